"""Playout: pacing the agent's audio onto the line and knowing what the caller has heard."""
