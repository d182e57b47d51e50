"""Audio primitives: G.711 μ-law, resampling, WAV files, levels."""
