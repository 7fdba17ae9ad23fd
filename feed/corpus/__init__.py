"""The article corpus and the category catalog: writes, reads, ingestion."""
