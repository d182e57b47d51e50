"""Text-to-speech: a piece of the reply in, telephony audio (8 kHz μ-law) out."""
