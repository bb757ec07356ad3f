"""fer-attention: attention mechanism-based CNN for facial expression recognition (Li et al., 2020)."""

__version__ = "0.1.0"
