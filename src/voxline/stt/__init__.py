"""Speech-to-text: the caller's finished utterance in, text out."""
