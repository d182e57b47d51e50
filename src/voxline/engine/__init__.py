"""The voice stack: model files with pinned hashes, the providers each stage uses, and their fallbacks."""
