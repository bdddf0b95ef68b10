"""The query service: a FastAPI process reading the store (never the Faust tables)."""
