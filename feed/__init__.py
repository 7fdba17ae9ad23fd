"""The domain: articles, categories, subscriptions, the feed cache and the shared model."""
