"""RSS/Atom parsing and cleaning into articles; no Redis and no network here (fetching a
feed: feed.sources.fetch; storing: feed.sources).

Parsing never stops at a bad item: each one is reported with a reason and the good items are
returned.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import feedparser

from feed.corpus.articles import Article
from feed.corpus.urls import canonical_url

# Field limits: the same as the article API's (api/schemas.py ArticleInSchema).
MAX_TITLE = 500
MAX_SUMMARY = 5000
MAX_BODY = 100_000
MAX_SOURCE = 200
MAX_URL = 2048
MAX_CATEGORIES = 10
# An item whose raw text (title, summary and content) is larger than this is refused whole.
MAX_ITEM_CHARS = 1_000_000
FUTURE_TOLERANCE = timedelta(minutes=5)  # publish dates further ahead are clock skew
SCHEMES = ("http", "https")
BENIGN_BOZO = frozenset({"NonXMLContentType"})


@dataclass(frozen=True)
class FeedItemError:
    index: int
    reason: str  # invalid, too_large, missing_link, missing_title, feed
    message: str
    guid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "reason": self.reason,
            "message": self.message,
            "guid": self.guid,
        }


@dataclass
class Parsed:
    articles: list[Article] = field(default_factory=list)
    # Articles whose date came from the fetch time (missing or future in the feed).
    undated: set[str] = field(default_factory=set)
    errors: list[FeedItemError] = field(default_factory=list)
    entries: int = 0
    bozo: str | None = None  # why the document is malformed, when it is


def parse(
    body: bytes,
    *,
    source_id: str,
    url: str,
    default_categories: Sequence[str],
    category_map: Mapping[str, str],
    fetched_at: datetime,
    content_type: str | None = None,
) -> Parsed:
    """Every usable entry of a feed document as an article, and a reason for each unusable one."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    document = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    result = Parsed(entries=len(document.entries))
    error = document.get("bozo_exception")
    # A feed served as text/plain or without a type is common and harmless: not malformed.
    if document.get("bozo") and type(error).__name__ not in BENIGN_BOZO:
        result.bozo = f"{type(error).__name__}: {error}"[:500] if error else "malformed feed"
    feed_title = _plain(document.feed.get("title", "")) if document.get("feed") else ""
    source_name = _truncate(feed_title, MAX_SOURCE) or urlsplit(url).hostname or None
    mapping = {k.strip().lower(): v for k, v in category_map.items()}
    for index, entry in enumerate(document.entries):
        try:
            article, undated = _article(
                entry,
                source_id=source_id,
                source_name=source_name,
                defaults=default_categories,
                mapping=mapping,
                fetched_at=fetched_at,
            )
        except _Unusable as error:
            result.errors.append(FeedItemError(index, error.reason, error.message, _guid(entry)))
            continue
        except Exception as error:  # a feed we did not foresee must not stop the others
            result.errors.append(
                FeedItemError(
                    index, "invalid", f"{type(error).__name__}: {error}"[:500], _guid(entry)
                )
            )
            continue
        result.articles.append(article)
        if undated:
            result.undated.add(article.id)
    return result


class _Unusable(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def article_id(source_id: str, key: str) -> str:
    """A stable id within the ID rule: the source's id and a digest of the guid or url."""
    return f"src-{source_id}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def _article(
    entry: Any,
    *,
    source_id: str,
    source_name: str | None,
    defaults: Sequence[str],
    mapping: Mapping[str, str],
    fetched_at: datetime,
) -> tuple[Article, bool]:
    raw_title = entry.get("title", "") or ""
    raw_summary = entry.get("summary", "") or ""
    contents = entry.get("content") or []
    raw_content = " ".join(str(c.get("value", "")) for c in contents)
    size = len(raw_title) + len(raw_summary) + len(raw_content)
    if size > MAX_ITEM_CHARS:
        raise _Unusable("too_large", f"the item has {size} characters (at most {MAX_ITEM_CHARS})")

    link = (entry.get("link") or "").strip()
    if not link or urlsplit(link).scheme.lower() not in SCHEMES or not urlsplit(link).hostname:
        raise _Unusable("missing_link", f"no http(s) link: {link[:200]!r}")
    if len(link) > MAX_URL:
        raise _Unusable("invalid", f"the link is longer than {MAX_URL} characters")

    title_detail = entry.get("title_detail") or {}
    title = (
        html_to_text(raw_title) if "html" in title_detail.get("type", "html") else _plain(raw_title)
    )
    summary = html_to_text(raw_summary)
    body = html_to_text(raw_content)
    if not summary:
        summary = body
    if body == summary:
        body = ""
    if not title:
        title = _truncate(summary, 120)
    if not title:
        raise _Unusable("missing_title", "the item has neither a title nor a summary")

    guid = (entry.get("id") or "").strip()
    key = guid or canonical_url(link)
    published, undated = _published(entry, fetched_at)
    return (
        Article(
            id=article_id(source_id, key),
            url=link,
            title=_truncate(title, MAX_TITLE),
            summary=_truncate(summary, MAX_SUMMARY),
            categories=_categories(entry, defaults, mapping),
            published_at=published,
            source=source_name,
            body=_truncate(body, MAX_BODY),
        ),
        undated,
    )


def _published(entry: Any, fetched_at: datetime) -> tuple[datetime, bool]:
    """The entry's date in UTC; the fetch time when it is missing or in the future."""
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(name)
        if parsed:
            try:
                moment = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError):
                continue
            if moment > fetched_at + FUTURE_TOLERANCE:
                return fetched_at, True
            return moment, False
    return fetched_at, True


def _categories(entry: Any, defaults: Sequence[str], mapping: Mapping[str, str]) -> tuple[str, ...]:
    found = list(defaults)
    for tag in entry.get("tags") or []:
        for label in (tag.get("term"), tag.get("label")):
            slug = mapping.get(str(label or "").strip().lower())
            if slug:
                found.append(slug)
    unique = tuple(dict.fromkeys(found))[:MAX_CATEGORIES]
    if not unique:
        raise _Unusable("invalid", "no category: set the source's categories or category_map")
    return unique


def _guid(entry: Any) -> str | None:
    try:
        value = entry.get("id") or entry.get("link")
    except Exception:
        return None
    return str(value)[:500] if value else None


class _TextExtractor(HTMLParser):
    SKIP = frozenset({"script", "style", "head", "template", "noscript"})
    BREAKS = frozenset(
        {"br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5"}
        | {"h6", "blockquote", "pre", "hr", "section", "article", "figure", "figcaption"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment, entities decoded, whitespace collapsed."""
    if not markup:
        return ""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    # Entities double-escaped by the feed (``&amp;amp;``) come through once more as text.
    return _plain(html.unescape("".join(parser.parts)))


def _plain(text: str) -> str:
    return _SPACE.sub(" ", _CONTROL.sub("", str(text))).strip()


def _truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"
