"""The JSON API for call records, behind a bearer token."""
