"""Embedded model files and the bounded worker pool that runs blocking model calls."""
