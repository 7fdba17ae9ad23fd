"""What the feed service tells whoever watches it: each page served (from the cache or not)
and how long each feed build took. The web layer passes its metrics in; workers and the CLI
watch nothing."""

from __future__ import annotations

from typing import Protocol


class FeedObserver(Protocol):
    def page_served(self, cache_hit: bool) -> None:
        """A page answered a reader's request (never a precomputed one: nobody saw it)."""

    def feed_built(self, seconds: float) -> None:
        """A feed was ranked and stored, in that many seconds."""


class Unobserved:
    """The observer of a service nobody watches."""

    def page_served(self, cache_hit: bool) -> None:
        pass

    def feed_built(self, seconds: float) -> None:
        pass
