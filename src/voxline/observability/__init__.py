"""Metrics (Prometheus) for calls, turns, stages, errors and the event loop."""
