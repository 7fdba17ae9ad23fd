"""TF-IDF content model and rankers: numbers in, numbers out (no Flask, no Redis)."""
