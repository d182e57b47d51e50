"""Who may use the server and how much: call slots, per-call stream credentials, trusted proxies,
webhooks answered once. Plain state machines with no I/O, made once per application in ``Services``."""
