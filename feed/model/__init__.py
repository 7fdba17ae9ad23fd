"""The shared TF-IDF model: fitting, publishing, loading, and breaking news between fits."""
