"""The factory refuses configurations that could only fail later, with a message that says why."""

from __future__ import annotations

import pytest

from api import create_app
from config import Settings

PEM = "-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"redis_url": ""}, "NEWSFEED_REDIS_URL"),
        ({"jwt_secret": ""}, "NEWSFEED_JWT_SECRET"),
        ({"jwt_secret": "short"}, "at least 32 bytes"),
        ({"jwt_secret": "", "jwt_public_key": PEM}, "NEWSFEED_JWT_ALGORITHMS"),
        (
            {"jwt_secret": "", "jwt_public_key": PEM, "jwt_algorithms": ("RS256",)},
            "NEWSFEED_CURSOR_SECRET",
        ),
    ],
)
def test_unusable_configuration_is_refused(settings_overrides, overrides, complaint):
    with pytest.raises(RuntimeError, match=complaint):
        create_app({**settings_overrides, **overrides})


def test_environment_then_overrides():
    environ = {
        "NEWSFEED_PORT": "9000",
        "NEWSFEED_AUTO_REINDEX": "no",
        "NEWSFEED_JWT_ALGORITHMS": "RS256, ES256",
        "NEWSFEED_WORKERS": "3",
    }
    settings = Settings.from_env(environ, overrides={"workers": 5})
    assert settings.port == 9000 and settings.auto_reindex is False
    assert settings.jwt_algorithms == ("RS256", "ES256")
    assert settings.workers == 5


def test_an_unparseable_variable_names_itself():
    with pytest.raises(ValueError, match="NEWSFEED_PORT"):
        Settings.from_env({"NEWSFEED_PORT": "eighty"})
