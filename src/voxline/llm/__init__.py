"""The language model: conversation in, reply streamed out token by token."""
