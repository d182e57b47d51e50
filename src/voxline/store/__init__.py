"""Persistent state shared by every server process (SQLite by default)."""
