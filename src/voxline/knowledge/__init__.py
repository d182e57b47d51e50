"""What the agent knows for certain, answered without the LLM: the opening hours as a schedule."""
