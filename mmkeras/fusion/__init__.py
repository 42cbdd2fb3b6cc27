"""Fusion layers, by name. Each fuses `[B, V, D]` embeddings (+ tokens) into one vector.

`FUSIONS` is read whenever a fusion is asked for (`get`, an app.yaml's
`model.fusion`), so a layer registered from user code is one entry:
`mmkeras.fusion.FUSIONS["mine"] = MyFusion`.
"""

from mmkeras.fusion.attention import ModalityAttentionFusion
from mmkeras.fusion.fusion_layer import FusionLayer
from mmkeras.fusion.concat import ConcatFusion
from mmkeras.fusion.cross_attention import CrossAttentionFusion
from mmkeras.fusion.gated import GatedFusion
from mmkeras.fusion.low_rank import LowRankFusion
from mmkeras.fusion.modality_dropout import ModalityDropout
from mmkeras.fusion.options import check_options, fusion_options
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
    """Builds the fusion layer called `name` (a key of `FUSIONS`), named "fusion".

    `options` are checked against the layer's constructor first
    (`check_options`): a misspelt or mistyped option is an error naming it.

    Example:
    >>> get("gated", ["image", "text"], hidden_dim=32).hidden_dim
    32
    >>> get("gated", ["image", "text"], hiden_dim=32)
    Traceback (most recent call last):
    ...
    ValueError: fusion_options.hiden_dim: unknown key (did you mean 'hidden_dim'?); GatedFusion takes: hidden_dim
    """
    fusion_class = lookup(FUSIONS, name, "fusion")
    return fusion_class(modality_names, name="fusion", **check_options(fusion_class, options))
