"""The embedded store: SQLite (WAL), one file."""
