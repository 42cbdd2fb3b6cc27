"""The one door to KerasCV, KerasHub and keras.applications image backbones.

Every image architecture mmkeras knows is one entry of `IMAGE_BACKBONES`
(`mmkeras/backbone_configs.py`): the library and class that build it, its
explicit constructor config, the pixel normalisation it expects and the
channels of its features. Architectures are always built from these configs,
never from a library preset name: a KerasCV preset name fetches its config
over the network even without weights, and KerasCV 0.9's preset files hold
no configs at all. KerasCV is no longer
developed, so it is imported only here; replacing it touches this file alone.

CNNs give a feature map `[B, h, w, C]`. Vision transformers (ViT, DINOv2, the
image towers of CLIP and SigLIP) are wrapped to give
`{"tokens": [B, N, C], "pooled": [B, C]}`, `pooled` being the model's own
summary: its class token, or SigLIP's attention-pooling head.

KerasHub and KerasCV models come back wrapped in a `SubModel`, so a frozen
backbone stays frozen after a `.keras` reload (see `_reloads_frozen`).

Example:
>>> from mmkeras import backbones
>>> model = backbones.build_image_backbone("tiny_cnn", input_shape=(64, 64, 3))
>>> model.output.shape
(None, 8, 8, 64)
>>> backbones.image_normalization("resnet18_v2")
'unit'
"""

import copy
import inspect
import json
import os

import keras

from mmkeras.backbone_configs import IMAGE_BACKBONES, LIBRARIES, NORMALIZATIONS, POOLINGS, BackboneEntry
from mmkeras.modalities.submodel import SubModel
from mmkeras.registry import lookup
from mmkeras.scratch_cnns import small_cnn, tiny_cnn

__all__ = ["IMAGE_BACKBONES", "LIBRARIES", "NORMALIZATIONS", "POOLINGS", "BackboneEntry",
           "build_image_backbone", "feature_channels", "image_normalization"]


# === Public API ===


def image_normalization(name):
    """The pixel normalisation the named backbone expects.

    Args:
        name: a name from `IMAGE_BACKBONES`.

    Returns:
        One of `NORMALIZATIONS`.

    Example:
    >>> image_normalization("keras_applications/resnet50v2")
    'symmetric'
    """
    return _entry(name).normalization


def feature_channels(name):
    """Channels `C` of the named backbone's features (feature map or tokens).

    Example:
    >>> feature_channels("tiny_cnn")
    64
    """
    return _entry(name).channels


def build_image_backbone(name, weights=None, input_shape=(None, None, 3)):
    """Builds a named image backbone: normalised pixels -> features.

    The model maps `[B, H, W, 3]` pixels, already normalised as
    `image_normalization(name)` says, to a feature map `[B, h, w, C]` with no
    pooling or, for a transformer entry (`pooling` other than `"average"`),
    to `{"tokens": [B, N, C], "pooled": [B, C]}`.

    Args:
        name: a name from `IMAGE_BACKBONES`.
        weights: where the weights come from:
            - `None`: random initialisation (offline).
            - a local preset directory (offline): a KerasHub preset (made with
              `save_to_preset`, or a timm/Transformers checkpoint directory
              KerasHub reads) for a `keras_hub` entry, a KerasCV preset for a
              `keras_cv` entry. `from_preset` runs on the entry's class (for
              CLIP/SigLIP on the two-tower class, keeping the image tower).
            - a weights file such as `.weights.h5` (offline): the architecture
              is built from the entry's config, then loads the file, written
              by the backbone this function returns or by the library's own
              model (a KerasHub preset's `model.weights.h5`).
            - a preset handle: `"kaggle://..."`, `"hf://..."` (KerasHub only)
              or one of the class's preset names (e.g.
              `"resnet50_v2_imagenet"`), or `"imagenet"` for a
              keras.applications entry. These download, so they only work
              where the machine has a network.
        input_shape: `(H, W, 3)`; `None` sizes accept any image size (CNNs
            only: transformers need a fixed size).

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: unknown `name`, weights that do not fit the entry, or an
            image size the entry or its preset cannot take.
        FileNotFoundError: `weights` is a path that does not exist.

    Example:
    >>> model = build_image_backbone("tiny_cnn", input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 4, 4, 64)
    """
    entry = _entry(name)
    input_shape = tuple(input_shape)
    if entry.pooling != "average" and None in input_shape[:2]:
        raise ValueError(
            f"Image backbone {name!r} is a transformer: it needs a fixed image "
            f"size, e.g. input_shape=(224, 224, 3). Received: input_shape={input_shape}"
        )
    library_model, weights_file = _build(name, entry, weights, input_shape)
    model = _wrap(library_model, entry)
    if weights_file is not None:
        _load_weights_file(name, entry, model, library_model, weights_file)
    return model


# === Building ===


def _entry(name):
    return lookup(IMAGE_BACKBONES, name, "image backbone")


def _build(name, entry, weights, input_shape):
    """`(the library's own model, a weights file to load once it is wrapped, or None)`."""
    if weights is None:
        return _from_config(entry, input_shape), None
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"`weights` for image backbone {name!r} must be None, a path or a "
            f"preset handle string. Received: weights={weights!r}"
        )
    weights = os.fspath(weights)
    if "://" in weights:
        return _from_preset(name, entry, weights, input_shape), None
    path = os.path.expanduser(weights)
    if os.path.isdir(path):
        return _from_preset(name, entry, path, input_shape), None
    if os.path.isfile(path):
        return _from_config(entry, input_shape), path
    if weights in _preset_names(entry):
        return _from_preset(name, entry, weights, input_shape), None
    raise FileNotFoundError(
        f"Weights for image backbone {name!r} not found: {path!r} does not "
        f"exist. Expected None, a local preset directory, a weights file "
        f"(.weights.h5) or a preset handle ('kaggle://...', 'hf://...')."
    )


def _library_class(entry, class_name=None):
    """The class (or function) that builds an entry, imported lazily."""
    class_name = class_name or entry.class_name
    if entry.library == "keras_cv":
        import keras_cv

        return getattr(keras_cv.models, class_name)
    if entry.library == "keras_hub":
        import keras_hub

        return getattr(keras_hub.models, class_name)
    if entry.library == "keras_applications":
        return getattr(keras.applications, class_name)
    return _BUILDERS[class_name]


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
        return tuple(_library_class(entry, entry.preset_class).presets)
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
    config = _preset_config(name, entry, preset) if os.path.isdir(preset) else {}
    if entry.library == "keras_cv":
        # A KerasCV preset may have been saved with rescaling on; the model's
        # normalisation layer already divides by 255, so switch it off here.
        return cls.from_preset(preset, input_shape=input_shape, include_rescaling=False)
    # A two-tower preset (CLIP, SigLIP) loads whole; the image tower is kept.
    # A preset of the tower alone loads directly.
    tower = entry.preset_class and config.get("class_name") != entry.class_name
    if tower:
        cls = _library_class(entry, entry.preset_class)
    # Position embeddings learned for one size load only at that size, so a
    # fixed-size family builds at the preset's size, checked below.
    model = cls.from_preset(preset, **({} if entry.fixed_size else _hub_shape(cls, input_shape)))
    if tower:
        model = model.vision_encoder
    if entry.fixed_size:
        _check_preset_size(name, preset, _image_input(model), input_shape)
    return model


def _preset_config(name, entry, directory):
    """A preset directory's config.json; refuses one made by the other library."""
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
    return config


def _check_preset_size(name, preset, images, input_shape):
    size = tuple(images.shape[1:3])
    if size != tuple(input_shape[:2]):
        raise ValueError(
            f"The preset {preset!r} of image backbone {name!r} takes {size[0]}x{size[1]} "
            f"images: its position embeddings were learned for that size. Use "
            f"ImageInput(size={size}). Received: an image size of {tuple(input_shape[:2])}"
        )


def _wrap(library_model, entry):
    """The model `build_image_backbone` returns around the library's own."""
    if entry.pooling != "average":
        return _tokens_and_pooled(library_model, entry.pooling)
    if entry.library in ("keras_cv", "keras_hub"):
        return _reloads_frozen(library_model)
    return library_model


def _load_weights_file(name, entry, model, library_model, path):
    """Loads a `.weights.h5` written by `model` (this module's backbone) or by the library's model.

    The layouts differ where `_wrap` wrapped the library's model; a KerasHub
    preset's `model.weights.h5` has the library's.
    """
    try:
        model.load_weights(path)
    except ValueError as error:
        if library_model is model:
            raise
        try:
            library_model.load_weights(path)
        except ValueError:
            raise ValueError(
                f"The weights file {path!r} does not fit image backbone {name!r}: expected the "
                f"weights of the backbone mmkeras builds for it, or of {entry.library}'s "
                f"{entry.class_name} with the entry's config. Loading the first said: {error}"
            ) from None


def _reloads_frozen(backbone):
    """`backbone` inside a `SubModel`, whose `trainable` survives a `.keras` reload.

    A KerasHub or KerasCV backbone's config holds no layer's `trainable`,
    and Keras 3.15's functional constructor sets its own before it tracks
    its layers (only those also kept as attributes receive it, as in
    KerasHub's text backbones): a frozen ResNet or ViT reloaded with
    variables `fit` would train. `SubModel` sets the flag again once built.
    Plain functional models (keras.applications, `tiny_cnn`) record each
    layer's flag in their config already.
    """
    pixels = keras.Input(backbone.input.shape[1:], name="pixels")
    return SubModel(pixels, backbone(pixels), name=backbone.name)


# === Transformers: tokens and their own pooled output ===


def _image_input(model):
    """KerasHub vision transformers take a tensor or `{"images": tensor}`."""
    return model.input["images"] if isinstance(model.input, dict) else model.input


def _tokens_and_pooled(encoder, pooling):
    """Wraps a vision transformer: pixels -> `{"tokens": [B, N, C], "pooled": [B, C]}`."""
    images = _image_input(encoder)
    pixels = keras.Input(images.shape[1:], name="pixels")
    feed = {"images": pixels} if isinstance(encoder.input, dict) else pixels
    if pooling == "class_token":
        tokens = encoder(feed)
        pooled = ClassToken(name="class_token")(tokens)
    else:
        # SigLIP's vision encoder returns only its attention-pooled vector:
        # cut a sub-model that also returns the tokens that head reads.
        tokens, pooled = keras.Model(encoder.input, [encoder.post_layer_norm.output, encoder.output],
                                     name=encoder.name)(feed)
        # KerasHub 0.32's SigLIPVisionEmbedding reports one token too many
        # (a class token SigLIP does not have). Keeping the true number of
        # patch tokens changes nothing at run time and gives fusion layers
        # the right static shape.
        count = (images.shape[1] // encoder.patch_size) * (images.shape[2] // encoder.patch_size)
        tokens = FirstTokens(count, name="patch_tokens")(tokens)
    # A `SubModel`, as `_reloads_frozen` explains: it reloads frozen.
    return SubModel(pixels, {"tokens": tokens, "pooled": pooled}, name=encoder.name)


@keras.saving.register_keras_serializable(package="mmkeras")
class ClassToken(keras.layers.Layer):
    """The first token of a sequence, `[B, N, C] -> [B, C]`.

    ViT, DINOv2 and CLIP prepend a class token whose final state is the
    image summary their heads (and CLIP's projection) read.

    Example:
    >>> import numpy as np
    >>> ClassToken()(np.arange(12.0).reshape(1, 3, 4)).numpy().tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """

    def call(self, tokens):
        return tokens[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="mmkeras")
class FirstTokens(keras.layers.Layer):
    """The first `count` tokens of a sequence, `[B, N, C] -> [B, count, C]`.

    Args:
        count: how many tokens to keep.

    Example:
    >>> import numpy as np
    >>> FirstTokens(2)(np.zeros((1, 5, 4))).shape
    TensorShape([1, 2, 4])
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, tokens):
        return tokens[:, : self.count, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.count, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "count": self.count}


_BUILDERS = {"tiny_cnn": tiny_cnn, "small_cnn": small_cnn}
