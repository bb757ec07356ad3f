"""Networks: the paper's FERAttentionNet (all ablations, the VGG16 baseline included) and its parts."""

__all__ = ["FERAttentionNet", "count_parameters"]


def __getattr__(name: str):
    # lazy: the config layer reads the option schemas (models.options) without importing torch
    if name in __all__:
        from fer_attention.models import fer_attention_net

        return getattr(fer_attention_net, name)
    raise AttributeError(f"module 'fer_attention.models' has no attribute {name!r}")
