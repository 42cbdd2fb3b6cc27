"""The one door to KerasCV, KerasHub and keras.applications image backbones.

Every image architecture mmkeras knows is one entry of `IMAGE_BACKBONES`: the
library and class that build it, its explicit constructor config, the pixel
normalisation it expects and the channels of its feature map. Architectures
are always built from these configs, never from a library preset name: a
KerasCV preset name fetches its config over the network even without weights,
and KerasCV 0.9's preset files hold no configs at all. KerasCV is no longer
developed, so it is imported only here; replacing it touches this file alone.

The configs were copied from the libraries' own presets: KerasCV's
`*_backbone_presets.py` (before configs moved to Kaggle), KerasHub's timm
converters (`keras_hub/src/utils/timm/convert_*.py`, which define the
architectures of its `*_imagenet` presets) and keras.applications.

Example:
>>> from mmkeras import backbones
>>> model = backbones.build_image_backbone("tiny_cnn", input_shape=(64, 64, 3))
>>> model.output.shape
(None, 8, 8, 64)
>>> backbones.image_normalization("resnet18_v2")
'unit'
"""

import copy
import dataclasses
import inspect
import json
import os

import keras

NORMALIZATIONS = ("unit", "symmetric", "imagenet", "none")
LIBRARIES = ("mmkeras", "keras_cv", "keras_hub", "keras_applications")


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """How to build one named image backbone.

    Args:
        library: which library builds it: `"mmkeras"` (this file),
            `"keras_cv"`, `"keras_hub"` or `"keras_applications"`.
        class_name: the class (or keras.applications function) in that
            library, e.g. `"ResNetV2Backbone"`.
        config: its explicit constructor arguments, except the input shape.
        normalization: the pixels it expects: `"unit"` (x / 255),
            `"symmetric"` (x / 127.5 - 1), `"imagenet"` (ImageNet mean/std
            over 0..255) or `"none"` (the backbone rescales itself).
        channels: channels of its output feature map.
    """

    library: str
    class_name: str
    config: dict
    normalization: str
    channels: int


# === Configs shared by several entries ===

_KERAS_CV_EFFICIENTNETV2_B = dict(
    width_coefficient=1.0,
    depth_coefficient=1.0,
    skip_connection_dropout=0.2,
    depth_divisor=8,
    min_depth=8,
    activation="swish",
    stackwise_kernel_sizes=[3, 3, 3, 3, 3, 3],
    stackwise_num_repeats=[1, 2, 2, 3, 5, 8],
    stackwise_input_filters=[32, 16, 32, 48, 96, 112],
    stackwise_output_filters=[16, 32, 48, 96, 112, 192],
    stackwise_expansion_ratios=[1, 4, 4, 4, 6, 6],
    stackwise_squeeze_and_excite_ratios=[0, 0, 0, 0.25, 0.25, 0.25],
    stackwise_strides=[1, 2, 2, 2, 1, 2],
    stackwise_conv_types=["fused", "fused", "fused", "unfused", "unfused", "unfused"],
)

_HS = "hard_swish"

# === The registry: one entry per backbone ===

# KerasCV entries set include_rescaling=False: the model's own normalisation
# layer does KerasCV's x / 255, so a preset saved with rescaling on loads the
# same way (see `_from_preset`).
IMAGE_BACKBONES = {
    "tiny_cnn": BackboneEntry("mmkeras", "tiny_cnn", dict(filters=[16, 32, 64]), "unit", 64),
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
    # --- KerasHub (architectures of its timm-converted *_imagenet presets) ---
    # Not MobileNetBackbone: its depthwise convs are grouped Conv2D, which
    # Keras on TensorFlow compiles with XLA, and a serving signature must not.
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
        min_depth=None, include_stem_padding=True, use_depth_divisor_as_min_depth=True,
        cap_round_filter_decrease=True, stem_conv_padding="valid",
        batch_norm_momentum=0.9, batch_norm_epsilon=1e-5, dropout=0,
        projection_activation=None), "imagenet", 1280),
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


# === Public API ===


def image_normalization(name):
    """The pixel normalisation the named backbone expects.

    Args:
        name: a name from `IMAGE_BACKBONES`.

    Returns:
        `"unit"`, `"symmetric"`, `"imagenet"` or `"none"`.

    Example:
    >>> image_normalization("keras_applications/resnet50v2")
    'symmetric'
    """
    return _entry(name).normalization


def feature_channels(name):
    """Channels `C` of the named backbone's feature map `[B, h, w, C]`.

    Example:
    >>> feature_channels("tiny_cnn")
    64
    """
    return _entry(name).channels


def build_image_backbone(name, weights=None, input_shape=(None, None, 3)):
    """Builds a named image backbone: normalised pixels -> feature map.

    The model maps `[B, H, W, 3]` pixels, already normalised as
    `image_normalization(name)` says, to a feature map `[B, h, w, C]` with no
    pooling.

    Args:
        name: a name from `IMAGE_BACKBONES`.
        weights: where the weights come from:
            - `None`: random initialisation (offline).
            - a local preset directory (offline): a KerasHub preset (made with
              `save_to_preset`, or a timm/Transformers checkpoint directory
              KerasHub reads) for a `keras_hub` entry, a KerasCV preset for a
              `keras_cv` entry. `from_preset` runs on the entry's class.
            - a weights file such as `.weights.h5` (offline): the architecture
              is built from the entry's config, then `load_weights(file)`.
            - a preset handle: `"kaggle://..."`, `"hf://..."` (KerasHub only)
              or one of the class's preset names (e.g.
              `"resnet50_v2_imagenet"`), or `"imagenet"` for a
              keras.applications entry. These download, so they only work
              where the machine has a network.
        input_shape: `(H, W, 3)`; `None` sizes accept any image size.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: unknown `name`, or weights that do not fit the entry.
        FileNotFoundError: `weights` is a path that does not exist.

    Example:
    >>> model = build_image_backbone("tiny_cnn", input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 4, 4, 64)
    """
    entry = _entry(name)
    input_shape = tuple(input_shape)
    if weights is None:
        return _from_config(entry, input_shape)
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"`weights` for image backbone {name!r} must be None, a path or a "
            f"preset handle string. Received: weights={weights!r}"
        )
    weights = os.fspath(weights)
    if "://" in weights:
        return _from_preset(name, entry, weights, input_shape)
    path = os.path.expanduser(weights)
    if os.path.isdir(path):
        return _from_preset(name, entry, path, input_shape)
    if os.path.isfile(path):
        model = _from_config(entry, input_shape)
        model.load_weights(path)
        return model
    if weights in _preset_names(entry):
        return _from_preset(name, entry, weights, input_shape)
    raise FileNotFoundError(
        f"Weights for image backbone {name!r} not found: {path!r} does not "
        f"exist. Expected None, a local preset directory, a weights file "
        f"(.weights.h5) or a preset handle ('kaggle://...', 'hf://...')."
    )


# === Building ===


def _entry(name):
    if name not in IMAGE_BACKBONES:
        raise ValueError(
            f"Unknown image backbone {name!r}. Known backbones: "
            f"{', '.join(sorted(IMAGE_BACKBONES))}."
        )
    return IMAGE_BACKBONES[name]


def _library_class(entry):
    """The class (or function) that builds an entry, imported lazily."""
    if entry.library == "keras_cv":
        import keras_cv

        return getattr(keras_cv.models, entry.class_name)
    if entry.library == "keras_hub":
        import keras_hub

        return getattr(keras_hub.models, entry.class_name)
    if entry.library == "keras_applications":
        return getattr(keras.applications, entry.class_name)
    return _BUILDERS[entry.class_name]


def _from_config(entry, input_shape):
    cls = _library_class(entry)
    # Constructors may keep (and mutate) the lists they get; the table must not change.
    config = copy.deepcopy(entry.config)
    if entry.library == "keras_hub":
        return cls(**config, **_hub_shape(cls, input_shape))
    if entry.library == "keras_applications":
        return cls(**config, include_top=False, weights=None, input_shape=input_shape)
    return cls(**config, input_shape=input_shape)


def _hub_shape(cls, input_shape):
    """KerasHub vision backbones name their input shape either way."""
    parameters = inspect.signature(cls.__init__).parameters
    key = "image_shape" if "image_shape" in parameters else "input_shape"
    return {key: input_shape}


def _preset_names(entry):
    if entry.library == "keras_applications":
        return ("imagenet",)
    if entry.library in ("keras_cv", "keras_hub"):
        return tuple(_library_class(entry).presets)
    return ()


def _from_preset(name, entry, preset, input_shape):
    cls = _library_class(entry)
    if entry.library == "keras_applications" and preset == "imagenet":
        return cls(**entry.config, include_top=False, weights="imagenet", input_shape=input_shape)
    if entry.library not in ("keras_cv", "keras_hub"):
        raise ValueError(
            f"Image backbone {name!r} ({entry.library}) loads weights only from "
            f"a weights file (.weights.h5)"
            f"{' or imagenet' if entry.library == 'keras_applications' else ''}. "
            f"Received: weights={preset!r}"
        )
    if os.path.isdir(preset):
        _check_preset_library(name, entry, preset)
    if entry.library == "keras_hub":
        return cls.from_preset(preset, **_hub_shape(cls, input_shape))
    # A KerasCV preset may have been saved with rescaling on; the model's
    # normalisation layer already divides by 255, so switch it off here.
    return cls.from_preset(preset, input_shape=input_shape, include_rescaling=False)


def _check_preset_library(name, entry, directory):
    """Refuses a preset directory made by the other library, with a clear error."""
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(
            f"Weights directory {directory!r} for image backbone {name!r} is not "
            f"a preset: it has no config.json. Expected a {entry.library} preset "
            f"directory."
        )
    with open(config_path) as file:
        config = json.load(file)
    registered = str(config.get("registered_name", ""))
    library = "keras_cv" if registered.startswith("keras_cv") else "keras_hub"
    if library != entry.library:
        raise ValueError(
            f"Preset directory {directory!r} holds a {library} model "
            f"({registered}), but image backbone {name!r} is built by "
            f"{entry.library} ({entry.class_name})."
        )


def _tiny_cnn(filters, input_shape=(None, None, 3)):
    """A few stride-2 Conv/BN/ReLU blocks: a fast backbone for tests and demos."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False,
                                name=f"conv{i}")(x)
        # momentum 0.9: small demo runs take a few hundred steps, too few for
        # the default 0.99 moving averages to settle before validation.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


_BUILDERS = {"tiny_cnn": _tiny_cnn}
