"""fer-attention: attention mechanism-based CNN for facial expression recognition (Li et al., 2020)."""

__version__ = "0.1.0"

__all__ = ["load_model"]


def __getattr__(name: str):
    # lazy: `import fer_attention` stays light; `fer_attention.load_model` imports torch on first use
    if name == "load_model":
        from fer_attention.inference import load_model

        return load_model
    raise AttributeError(f"module 'fer_attention' has no attribute {name!r}")
