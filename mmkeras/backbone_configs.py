"""The named image backbones mmkeras builds: one `BackboneEntry` each.

Data only, as KerasHub keeps its presets apart from its models: adding a
backbone is one entry here. `mmkeras.backbones` builds them (and re-exports
these names).

The configs were copied from the libraries' own presets: KerasCV's
`*_backbone_presets.py` (before configs moved to Kaggle), KerasHub's
converters (`keras_hub/src/utils/{timm,transformers}/convert_*.py` and
`tools/checkpoint_conversion/`, which define the architectures of its
presets) and keras.applications. A preset's own config wins over the entry's
when its weights are loaded (`from_preset`), so a larger or smaller variant
of the same family loads through the same entry.

Example:
>>> IMAGE_BACKBONES["keras_hub/clip_vit_base_patch16"].normalization
'clip'
"""

import dataclasses

NORMALIZATIONS = ("unit", "symmetric", "imagenet", "clip", "none")
LIBRARIES = ("mmkeras", "keras_cv", "keras_hub", "keras_applications")
POOLINGS = ("average", "class_token", "attention_head")


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """How to build one named image backbone.

    Args:
        library: which library builds it: `"mmkeras"` (`mmkeras.backbones`),
            `"keras_cv"`, `"keras_hub"` or `"keras_applications"`.
        class_name: the class (or keras.applications function) in that
            library, e.g. `"ResNetV2Backbone"`.
        config: its explicit constructor arguments, except the input shape.
        normalization: the pixels it expects: `"unit"` (x / 255),
            `"symmetric"` (x / 127.5 - 1), `"imagenet"` (ImageNet mean/std
            over 0..255), `"clip"` (CLIP's mean/std) or `"none"` (the
            backbone rescales itself).
        channels: channels of its features.
        pooling: how it summarises an image: `"average"` (a feature map,
            averaged by `ImageInput`), `"class_token"` (a transformer whose
            first token is the summary) or `"attention_head"` (SigLIP: the
            encoder ends in an attention-pooling head after its tokens).
        fixed_size: its position embeddings are learned for one image size
            (ViT, CLIP, SigLIP), so a preset loads only at its own size.
            DINOv2 interpolates them and CNNs have none.
        preset_class: the class its presets hold when that is not
            `class_name`: CLIP and SigLIP presets hold both towers, of which
            the image encoder keeps `vision_encoder`.
    """

    library: str
    class_name: str
    config: dict
    normalization: str
    channels: int
    pooling: str = "average"
    fixed_size: bool = False
    preset_class: str = None


# === Configs shared by several entries ===

_KERAS_CV_EFFICIENTNETV2_B = dict(
    width_coefficient=1.0, depth_coefficient=1.0, skip_connection_dropout=0.2, depth_divisor=8,
    min_depth=8, activation="swish", stackwise_kernel_sizes=[3, 3, 3, 3, 3, 3],
    stackwise_num_repeats=[1, 2, 2, 3, 5, 8], stackwise_input_filters=[32, 16, 32, 48, 96, 112],
    stackwise_output_filters=[16, 32, 48, 96, 112, 192],
    stackwise_expansion_ratios=[1, 4, 4, 4, 6, 6],
    stackwise_squeeze_and_excite_ratios=[0, 0, 0, 0.25, 0.25, 0.25],
    stackwise_strides=[1, 2, 2, 2, 1, 2],
    stackwise_conv_types=["fused", "fused", "fused", "unfused", "unfused", "unfused"])

# Everything but the stage layout of KerasHub's timm EfficientNets (v1 and v2).
_KERAS_HUB_EFFICIENTNET = dict(
    min_depth=None, include_stem_padding=True, use_depth_divisor_as_min_depth=True,
    cap_round_filter_decrease=True, stem_conv_padding="valid", batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-5, dropout=0, projection_activation=None)

# The base (B/16-sized) vision transformer the ViT, CLIP and SigLIP presets share.
_VIT_B16 = dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768)

_HS = "hard_swish"

# === The registry: one entry per backbone ===

# KerasCV entries set include_rescaling=False: the model's own normalisation
# layer does KerasCV's x / 255, so a preset saved with rescaling on loads the
# same way (see `mmkeras.backbones._from_preset`).
IMAGE_BACKBONES = {
    "tiny_cnn": BackboneEntry("mmkeras", "tiny_cnn", dict(filters=[16, 32, 64]), "unit", 64),
    "small_cnn": BackboneEntry("mmkeras", "small_cnn", dict(filters=[16, 32, 64]), "unit", 64),
    # --- KerasCV 0.9 ---
    "resnet18_v2": BackboneEntry("keras_cv", "ResNetV2Backbone", dict(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=[2, 2, 2, 2],
        stackwise_strides=[1, 2, 2, 2], stackwise_dilations=None,
        block_type="basic_block", include_rescaling=False), "unit", 512),
    "resnet50_v2": BackboneEntry("keras_cv", "ResNetV2Backbone", dict(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=[3, 4, 6, 3],
        stackwise_strides=[1, 2, 2, 2], stackwise_dilations=None,
        block_type="block", include_rescaling=False), "unit", 2048),
    "efficientnetv2_b0": BackboneEntry("keras_cv", "EfficientNetV2Backbone", dict(
        _KERAS_CV_EFFICIENTNETV2_B, include_rescaling=False), "unit", 1280),
    "mobilenet_v3_small": BackboneEntry("keras_cv", "MobileNetV3Backbone", dict(
        stackwise_expansion=[1, 72.0 / 16, 88.0 / 24, 4, 6, 6, 3, 3, 6, 6, 6],
        stackwise_filters=[16, 24, 24, 40, 40, 40, 48, 48, 96, 96, 96],
        stackwise_kernel_size=[3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5],
        stackwise_stride=[2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1],
        stackwise_se_ratio=[0.25, None, None] + [0.25] * 8,
        stackwise_activation=["relu"] * 3 + [_HS] * 8,
        alpha=1.0, include_rescaling=False), "unit", 576),
    "mobilenet_v3_large": BackboneEntry("keras_cv", "MobileNetV3Backbone", dict(
        stackwise_expansion=[1, 4, 3, 3, 3, 3, 6, 2.5, 2.3, 2.3, 6, 6, 6, 6, 6],
        stackwise_filters=[16, 24, 24, 40, 40, 40, 80, 80, 80, 80, 112, 112, 160, 160, 160],
        stackwise_kernel_size=[3, 3, 3, 5, 5, 5, 3, 3, 3, 3, 3, 3, 5, 5, 5],
        stackwise_stride=[1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1],
        stackwise_se_ratio=[None] * 3 + [0.25] * 3 + [None] * 4 + [0.25] * 5,
        stackwise_activation=["relu"] * 6 + [_HS] * 9,
        alpha=1.0, include_rescaling=False), "unit", 960),
    # --- KerasHub CNNs (architectures of its timm-converted *_imagenet presets) ---
    # Not MobileNetBackbone: its depthwise convs are grouped Conv2D, which
    # Keras on TensorFlow compiles with XLA (still so on TF 2.20 / Keras 3.15:
    # keras/src/backend/tensorflow/nn.py `conv`, "grouped convolutions are
    # broken on CPU without XLA"), and a serving signature must not. The
    # KerasCV and keras.applications MobileNetV3 entries use DepthwiseConv2D.
    "keras_hub/resnet_18": BackboneEntry("keras_hub", "ResNetBackbone", dict(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[2, 2, 2, 2],
        stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        use_pre_activation=False), "imagenet", 512),
    "keras_hub/efficientnet_b0": BackboneEntry("keras_hub", "EfficientNetBackbone", dict(
        stackwise_width_coefficients=[1.0] * 7, stackwise_depth_coefficients=[1.0] * 7,
        stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3],
        stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
        stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
        stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
        stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6],
        stackwise_squeeze_and_excite_ratios=[0.25] * 7,
        stackwise_strides=[1, 2, 2, 2, 1, 2, 1], stackwise_block_types=["v1"] * 7,
        **_KERAS_HUB_EFFICIENTNET), "imagenet", 1280),
    # EfficientNetV2: timm's efficientnetv2_rw_t (preset efficientnet2_rw_t_ra2_imagenet).
    # Not rw_s / rw_m: their 1792-channel top conv is `num_features`, which
    # KerasHub 0.32's EfficientNetBackbone.get_config drops, so their
    # presets do not rebuild from a saved config.json.
    "keras_hub/efficientnet2_rw_t": BackboneEntry("keras_hub", "EfficientNetBackbone", dict(
        stackwise_width_coefficients=[0.8] * 6, stackwise_depth_coefficients=[0.9] * 6,
        stackwise_kernel_sizes=[3] * 6, stackwise_num_repeats=[2, 4, 4, 6, 9, 15],
        stackwise_input_filters=[24, 24, 48, 64, 128, 160],
        stackwise_output_filters=[24, 48, 64, 128, 160, 256],
        stackwise_expansion_ratios=[1, 4, 4, 4, 6, 6],
        stackwise_squeeze_and_excite_ratios=[0, 0, 0, 0.25, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 2, 1, 2],
        stackwise_block_types=["cba", "fused", "fused", "unfused", "unfused", "unfused"],
        stackwise_force_input_filters=[0] * 6, stackwise_nores_option=[False] * 6,
        activation="silu", **_KERAS_HUB_EFFICIENTNET), "imagenet", 1024),
    # --- KerasHub vision transformers (tokens plus their own pooled output) ---
    # google/vit-base-patch16-224 (preset vit_base_patch16_224_imagenet).
    "keras_hub/vit_base_patch16_224": BackboneEntry("keras_hub", "ViTBackbone", dict(
        _VIT_B16, mlp_dim=3072, dropout_rate=0.0,
        attention_dropout=0.0, use_mha_bias=True), "symmetric", 768,
        pooling="class_token", fixed_size=True),
    # facebook/dinov2-base (preset dinov2_base), trained at 518; any size loads.
    "keras_hub/dinov2_base": BackboneEntry("keras_hub", "DINOV2Backbone", dict(
        _VIT_B16, patch_size=14, intermediate_dim=3072, layer_scale_init_value=1.0,
        num_register_tokens=0, use_mask_token=True, use_swiglu_ffn=False, dropout_rate=0.0,
        drop_path_rate=0.0, position_embedding_shape=(518, 518),
        antialias_in_interpolation=False), "imagenet", 768, pooling="class_token"),
    # The image towers of openai/clip-vit-base-patch16 and
    # google/siglip-base-patch16-224 (presets clip_vit_base_patch16,
    # siglip_base_patch16_224): the preset's text tower is not kept.
    "keras_hub/clip_vit_base_patch16": BackboneEntry("keras_hub", "CLIPVisionEncoder", dict(
        _VIT_B16, intermediate_dim=3072, intermediate_activation="quick_gelu"), "clip", 768,
        pooling="class_token", fixed_size=True, preset_class="CLIPBackbone"),
    "keras_hub/siglip_base_patch16_224": BackboneEntry("keras_hub", "SigLIPVisionEncoder", dict(
        _VIT_B16, intermediate_dim=3072, intermediate_activation="gelu_approximate",
        layer_norm_epsilon=1e-6), "symmetric", 768,
        pooling="attention_head", fixed_size=True, preset_class="SigLIPBackbone"),
    # --- keras.applications (include_top=False; our layer normalises) ---
    "keras_applications/efficientnetv2b0": BackboneEntry(
        "keras_applications", "EfficientNetV2B0", dict(include_preprocessing=False),
        "imagenet", 1280),
    "keras_applications/mobilenetv3small": BackboneEntry(
        "keras_applications", "MobileNetV3Small",
        dict(alpha=1.0, minimalistic=False, include_preprocessing=False), "symmetric", 576),
    "keras_applications/resnet50v2": BackboneEntry(
        "keras_applications", "ResNet50V2", dict(), "symmetric", 2048),
}
