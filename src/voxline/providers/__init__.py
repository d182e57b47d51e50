"""Shared plumbing for hosted providers."""
