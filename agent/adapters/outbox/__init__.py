"""The outbox (sqlite3)."""
