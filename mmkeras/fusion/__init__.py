"""Fusion layers, by name. Each fuses `[B, V, D]` embeddings (+ tokens)."""

from mmkeras.fusion.attention import ModalityAttentionFusion
from mmkeras.fusion.base import FusionLayer
from mmkeras.fusion.concat import ConcatFusion
from mmkeras.fusion.cross_attention import CrossAttentionFusion
from mmkeras.fusion.gated import GatedFusion
from mmkeras.fusion.low_rank import LowRankFusion
from mmkeras.fusion.modality_dropout import ModalityDropout
from mmkeras.fusion.transformer import MultimodalTransformerFusion
from mmkeras.fusion.weighted import WeightedSumFusion
from mmkeras.registry import lookup

FUSIONS = {
    "concat": ConcatFusion,
    "weighted": WeightedSumFusion,
    "gated": GatedFusion,
    "attention": ModalityAttentionFusion,
    "cross_attention": CrossAttentionFusion,
    "transformer": MultimodalTransformerFusion,
    "low_rank": LowRankFusion,
}


def get(name, modality_names, **options):
    """Builds the fusion layer called `name` (a key of `FUSIONS`).

    Example:
    >>> get("gated", ["image", "text"], hidden_dim=32).hidden_dim
    32
    """
    return lookup(FUSIONS, name, "fusion")(modality_names, name="fusion", **options)
