"""What the agent can do besides talking: the business's HTTPS tools, and the built-in ones
(end the call, hand it to a person, take a message)."""
