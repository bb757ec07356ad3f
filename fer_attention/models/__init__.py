"""Networks: the paper's FERAttentionNet (all ablations, the VGG16 baseline included) and its parts."""

from fer_attention.models.fer_attention_net import FERAttentionNet, count_parameters

__all__ = ["FERAttentionNet", "count_parameters"]
