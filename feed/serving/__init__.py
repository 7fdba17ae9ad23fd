"""Serving a reader's feed: the orchestrator, the cache, cursors, the ranker per variant."""
