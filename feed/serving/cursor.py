"""Opaque, signed page cursors: which ranked list a page came from and where the next starts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from feed.exceptions import InvalidCursor

MAC_BYTES = 12  # 96 bits: forging one is hopeless, and the cursor stays short
MAX_CURSOR_CHARS = 400


@dataclass(frozen=True)
class Cursor:
    build_id: str
    offset: int


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"newsfeed-cursor:" + secret.encode()).digest()

    def encode(self, user_id: str, cursor: Cursor) -> str:
        payload = f"{cursor.build_id}.{cursor.offset}".encode()
        mac = self._mac(user_id, payload)
        return base64.urlsafe_b64encode(payload + b"." + mac).decode().rstrip("=")

    def decode(self, user_id: str, token: str) -> Cursor:
        """The cursor this service issued to this user, or InvalidCursor."""
        if not token or len(token) > MAX_CURSOR_CHARS:
            raise InvalidCursor("cursor is empty or too long; pass next_cursor unchanged")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, mac = raw[: -MAC_BYTES - 1], raw[-MAC_BYTES:]
            if raw[-MAC_BYTES - 1 : -MAC_BYTES] != b"." or not hmac.compare_digest(
                mac, self._mac(user_id, payload)
            ):
                raise ValueError("signature")
            build_id, offset = payload.decode().split(".")
            cursor = Cursor(build_id, int(offset))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCursor(
                "cursor is not one this service issued to this user; pass next_cursor unchanged"
            ) from exc
        if cursor.offset < 0 or not build_id.isalnum():
            raise InvalidCursor("cursor is malformed")
        return cursor

    def _mac(self, user_id: str, payload: bytes) -> bytes:
        return hmac.new(self._key, user_id.encode() + b"\0" + payload, "sha256").digest()[
            :MAC_BYTES
        ]
