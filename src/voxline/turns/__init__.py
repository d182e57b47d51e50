"""Turn detection: voice activity per 20 ms frame, and when the caller's turn starts and ends."""
