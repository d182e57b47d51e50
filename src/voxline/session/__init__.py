"""The call session: one orchestrator per call, from the caller's audio to the agent's reply."""
