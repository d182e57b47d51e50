"""Packaged agent files."""
