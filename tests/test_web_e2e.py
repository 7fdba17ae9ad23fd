"""The web page in a real headless Chromium against `newsfeed serve --demo`.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them in CI) and selenium.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from feed.readers.events import STREAM_KEY
from tests.browser import BROWSER_TESTS, WAIT, chromium
from tests.live import serve

SCREENSHOT = Path(tempfile.gettempdir()) / "newsfeed-page.png"

pytestmark = BROWSER_TESTS
pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")

from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, redis.Redis]]:
    tmp_path = tmp_path_factory.mktemp("web")
    with serve(tmp_path, None, args=["--demo"], workers=1) as service:
        service.wait_ready(timeout=120)
        url = (tmp_path / "var" / "redis.url").read_text().strip()
        client = redis.Redis.from_url(url)
        try:
            yield f"http://127.0.0.1:{service.port}", client
        finally:
            client.close()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[object]:
    browser = chromium(tmp_path / "chromium", (1200, 900))
    try:
        yield browser
    finally:
        browser.quit()


def cards(driver) -> list[dict]:
    """The feed's cards as the page shows them: id and categories."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#feed .card')].map("
        "c => ({id: c.dataset.id, categories: c.dataset.categories.split(' ')}))"
    )


def events(r: redis.Redis, kind: str) -> list[str]:
    """Article ids of the events of this type in the stream."""
    return [f[b"article"].decode() for _, f in r.xrange(STREAM_KEY) if f[b"type"] == kind.encode()]


def feed_in(driver, followed: set[str]) -> bool:
    """The feed has loaded and (almost) every item is in a followed category."""
    if driver.find_element("id", "feed").get_attribute("aria-busy") != "false":
        return False
    shown = cards(driver)
    if not shown:
        return False
    inside = sum(1 for c in shown if followed & set(c["categories"]))
    return inside >= 0.9 * len(shown) and bool(followed & set(shown[0]["categories"]))


def toggle(driver, slug: str) -> None:
    button = driver.find_element("css selector", f'.category[data-slug="{slug}"]')
    before = button.get_attribute("aria-pressed")
    button.click()
    WebDriverWait(driver, WAIT).until(
        lambda d: (
            button.get_attribute("aria-pressed") != before
            and button.get_attribute("aria-busy") is None
        )
    )


def test_follow_scroll_click_unfollow(server, driver) -> None:
    base, r = server
    driver.get(f"{base}/?user=e2e-reader")
    wait = WebDriverWait(driver, WAIT)
    wait.until(lambda d: len(d.find_elements("css selector", ".category")) >= 8)
    slugs = [
        b.get_attribute("data-slug") for b in driver.find_elements("css selector", ".category")
    ]
    first, second = slugs[0], slugs[1]
    wait.until(lambda d: len(cards(d)) > 0)
    before = [c["id"] for c in cards(driver)]

    toggle(driver, first)
    wait.until(lambda d: feed_in(d, {first}))
    one_category = [c["id"] for c in cards(driver)]
    assert one_category != before

    # The second toggle by keyboard: buttons are focusable, Space toggles.
    driver.find_element("css selector", f'.category[data-slug="{second}"]').send_keys(Keys.SPACE)
    wait.until(
        lambda d: (
            d.find_element("css selector", f'.category[data-slug="{second}"]').get_attribute(
                "aria-pressed"
            )
            == "true"
        )
    )
    wait.until(
        lambda d: feed_in(d, {first, second}) and [c["id"] for c in cards(d)] != one_category
    )
    assert r.smembers("nf:{u:e2e-reader}:subs") == {first.encode(), second.encode()}
    page_one = len(cards(driver))
    assert page_one == 20

    driver.save_screenshot(str(SCREENSHOT))
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait.until(lambda d: len(cards(d)) > page_one)

    title = driver.find_element("css selector", "#feed .card a.title")
    clicked = title.find_element("xpath", "ancestor::li").get_attribute("data-id")
    window = driver.current_window_handle
    title.click()
    wait.until(lambda d: clicked in events(r, "click"))
    assert len(driver.window_handles) == 2, "the article opens in a new tab"
    driver.switch_to.window(window)
    wait.until(lambda d: events(r, "impression"))  # batched, flushed every few seconds

    hidden = driver.find_elements("css selector", "#feed .card")[1]
    hidden_id = hidden.get_attribute("data-id")
    hidden.find_element("css selector", "button.hide").click()
    wait.until(lambda d: hidden_id not in [c["id"] for c in cards(d)])
    wait.until(lambda d: hidden_id in events(r, "hide"))

    toggle(driver, second)
    wait.until(
        lambda d: feed_in(d, {first}) and all(first in c["categories"] for c in cards(d)[:5])
    )
    assert hidden_id not in [c["id"] for c in cards(driver)]


def test_the_token_form_refuses_a_broken_token(server, driver) -> None:
    base, _ = server
    driver.get(f"{base}/")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements("css selector", ".category"))
    driver.execute_script("document.getElementById('token-form').hidden = false")
    driver.find_element("id", "token-input").send_keys("not-a-token")
    driver.find_element("css selector", "#token-form button").click()
    assert "not a valid" in driver.find_element("id", "token-error").text
