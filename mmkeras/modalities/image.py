"""Image modality: encoded image bytes -> any-size RGB pixels -> resize, normalise -> backbone."""

import io
import numbers

import keras
import numpy as np
import tensorflow as tf

from mmkeras.data.decode import DEFAULT_MAX_PIXELS, decode_image
from mmkeras.modalities import image_augment
from mmkeras.modalities.modality import Encoded, Modality, Occlusions, Proposal
from mmkeras.modalities.missing import SplitMissing, TokenMask
from mmkeras.modalities.column_cells import sampled_files, starts_with
from mmkeras.modalities.raw_formats import FileBytesRaw, value_range

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
# OpenAI CLIP's image statistics (0..1 units in its preprocessor config).
CLIP_MEAN = [255.0 * m for m in (0.48145466, 0.4578275, 0.40821073)]
CLIP_STD = [255.0 * s for s in (0.26862954, 0.26130258, 0.27577711)]
POOLINGS = ("avg", "max", "avg_max")
# First bytes of the formats the decoder reads (WebP: "RIFF", size, "WEBP").
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", (8, b"WEBP"))


class ImageInput(FileBytesRaw, Modality):
    """An image input: decoded RGB pixels in 0..255, any height and width.

    Resizing and the backbone's own normalisation are layers inside the model,
    so training, `predict` and the SavedModel compute the same thing.

    Args:
        name: input name (model input and serving field).
        size: `(height, width)` the model resizes to. ViT, CLIP and SigLIP
            presets take only the size they were trained at (224 x 224 for
            the base presets); a mismatch is refused when they load.
        backbone: a name from `mmkeras.backbones.IMAGE_BACKBONES`. The
            default `small_cnn` learns from a few thousand images (0.98
            validation accuracy on drawn digits after 10 epochs, where
            `tiny_cnn`'s strided convolutions reach 0.26); `tiny_cnn` costs
            ~14x less where the content is coarse; pretrained backbones
            beat both when a preset is at hand.
        weights: `None` (random init), a local KerasHub/KerasCV preset
            directory, a `.weights.h5` file, or a preset handle (network).
            A CLIP or SigLIP preset holds both towers; only the image tower
            becomes part of the model.
        trainable: `False` freezes the backbone and keeps its BatchNorm in
            inference mode; `True` fine-tunes it. For two-stage fine-tuning
            start frozen, then see `mmkeras.finetune.unfreeze`.
        augment: training-pipeline augmentation, off by default because a
            flip changes the label of digits, text and oriented parts:
            `"flip"` (or `True`) for random horizontal flips where a mirror
            image keeps its label, `"dihedral"` for random turns by 90
            degrees and mirrors (all 8, for a square `size`) where the
            content has no up or left, e.g. a part seen from above,
            `"randaugment"` for flips plus RandAugment (it changes colours,
            so opt in only where colour does not carry the label), `False`
            for none.
        max_pixels: the most pixels an image's header may declare; the
            serving graph and the data pipeline refuse a larger image
            before decoding it (a decompression bomb is a few bytes).

        pooling: how a CNN's feature map becomes one vector: `"avg"` (the
            mean over cells), `"max"` (the strongest response, which a small
            detail keeps where the mean dilutes it by the number of cells)
            or `"avg_max"` (both, concatenated). Transformer backbones keep
            their own summary (class token, SigLIP's attention pooling).

    The encoding's `pooled` is that vector; its `tokens` (feature-map cells or
    patch tokens) feed attention fusion.

    Example:
    >>> spec = ImageInput("photo", size=(32, 32), backbone="tiny_cnn")
    >>> x = spec.keras_input()
    >>> encoded = spec.encode(x)
    >>> encoded.pooled.shape[0] is None
    True
    """

    kind = "image"

    def __init__(self, name, size=(224, 224), backbone="small_cnn", weights=None,
                 trainable=True, augment=False, max_pixels=DEFAULT_MAX_PIXELS, pooling="avg"):
        super().__init__(name)
        if pooling not in POOLINGS:
            raise ValueError(f"ImageInput pooling must be one of {POOLINGS}. Received: {pooling!r}")
        self.pooling = pooling
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)):
            raise ValueError(f"size: expected [height, width] (two positive integers), received {size!r}")
        self.size = tuple(int(s) for s in size)
        self.max_pixels = int(max_pixels)
        self.backbone = backbone
        self.weights = weights
        self.trainable = bool(trainable)
        if augment not in (True, False, "flip", "dihedral", "randaugment"):
            raise ValueError(f"ImageInput augment must be False, True, 'flip', 'dihedral' or "
                             f"'randaugment'. Received: {augment!r}")
        if augment == "dihedral" and self.size[0] != self.size[1]:
            raise ValueError(f"ImageInput augment='dihedral' turns images by 90 degrees, which "
                             f"needs a square size. Received: size={list(self.size)} for input "
                             f"{name!r}")
        self.augment = "flip" if augment is True else augment

    def keras_input(self):
        return keras.Input(shape=(None, None, 3), dtype="float32", name=self.name)

    def encode(self, x):
        from mmkeras import backbones

        pixels, presence = SplitMissing(name=f"{self.name}_missing")(x)
        # Resizing's call defaults to training=True, and Keras 3.15 leaks that
        # default to every later layer of a `model(x)` call (keras#23166):
        # dropout and BatchNorm would run in training mode at inference. An
        # explicit False stops it; fit() still passes training=True.
        pixels = keras.layers.Resizing(*self.size, name=f"{self.name}_resize")(pixels, training=False)
        pixels = _normalization(backbones.image_normalization(self.backbone), self.name)(pixels)
        backbone = backbones.build_image_backbone(self.backbone, weights=self.weights,
                                                  input_shape=(*self.size, 3))
        backbone.name = f"{self.name}_backbone"
        if self.trainable:
            features = backbone(pixels)
        else:
            # Frozen backbones keep BatchNorm in inference mode even in fit().
            backbone.trainable = False
            features = backbone(pixels, training=False)
        if isinstance(features, dict):
            # A transformer: its own summary, named like the CNN average so
            # every image input exposes `<name>_pool`.
            pooled = keras.layers.Identity(name=f"{self.name}_pool")(features["pooled"])
            tokens = features["tokens"]
        else:
            pooled = _pool(features, self.pooling, self.name)
            tokens = keras.layers.Reshape((-1, features.shape[-1]), name=f"{self.name}_tokens")(features)
        token_mask = TokenMask(name=f"{self.name}_token_mask")(tokens)
        return Encoded(pooled, tokens, token_mask, presence)

    # --- Its path: a manifest cell names a JPEG/PNG/GIF/BMP/WebP file; a client
    # sends the file's bytes; the graph decodes them to `size` pixels.

    def parse_cells(self, cells):
        return cells.checked_file(cells.column, "image", lambda path: decode_image(
            self.client_raw(path), (1, 1), self.name, self.max_pixels))

    def summarize(self, values):
        present = [v for v in values if v]
        entry = {"missing": len(values) - len(present)}
        if present:
            sizes = [_header_size(path) for path in present]
            entry["width"], entry["height"] = value_range([w for w, _ in sizes]), value_range([h for _, h in sizes])
        return entry

    @classmethod
    def propose(cls, column, cells, folder):
        """Files that start like an image; the size is their median side,
        rounded up to a multiple of 16, 32 to 224 (the model resizes to it)."""
        files = sampled_files(cells, folder)
        if files is None or not all(starts_with(path, IMAGE_SIGNATURES) for path in files[1]):
            return None
        present, paths = files
        sizes = np.array([_header_size(path) for path in paths])
        side = int(min(224, max(32, -(-np.median(sizes.max(axis=1)) // 16) * 16)))
        seen = (f"{len(present)} image files, {len(cells) - len(present)} empty; width {sizes[:, 0].min()}-"
                f"{sizes[:, 0].max()}, height {sizes[:, 1].min()}-{sizes[:, 1].max()} (first {len(paths)}); "
                f"size {side} from them")
        return Proposal(1.0, {"size": [side, side]}, seen)

    def synthetic_raw(self, rng):
        return tf.io.encode_png(rng.integers(0, 256, (*self.size, 3), dtype=np.uint8)).numpy()

    def decode(self, raw):
        return decode_image(raw, self.size, self.name, self.max_pixels)

    def occlusions(self, value, grid=6):
        """Each cell of a `grid` x `grid` grid painted in the image's mean colour."""
        height, width = value.shape[:2]
        rows, columns = np.linspace(0, height, grid + 1, dtype=int), np.linspace(0, width, grid + 1, dtype=int)
        parts, copies = [], []
        for r in range(grid):
            for c in range(grid):
                copy = value.copy()
                copy[rows[r]:rows[r + 1], columns[c]:columns[c + 1]] = value.mean(axis=(0, 1))
                parts.append((r, c))
                copies.append(copy)
        return Occlusions("image", parts, np.stack(copies))

    def decoded_spec(self):
        return tf.TensorSpec((*self.size, 3), tf.float32)

    def decoded_bytes(self):
        return 4 * self.size[0] * self.size[1] * 3

    def edge_spec(self):
        return tf.TensorSpec((None, None, 3), tf.float32)  # any size: the model resizes

    def batch_augmenter(self, seed):
        return image_augment.batch_augmenter(self.name, self.augment, seed) if self.augment else None

    def get_config(self):
        return {"name": self.name, "size": list(self.size), "backbone": self.backbone,
                "weights": self.weights, "trainable": self.trainable, "augment": self.augment,
                "max_pixels": self.max_pixels, "pooling": self.pooling}


def _header_size(path):
    """(width, height) from an image file's header: the pixels are not decoded."""
    from PIL import Image

    with tf.io.gfile.GFile(path, "rb") as f, Image.open(io.BytesIO(f.read())) as image:
        return image.size


def _pool(features, pooling, name):
    """`[B, H, W, C]` -> `[B, C]` (`[B, 2C]` for avg_max), named `<name>_pool`."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=f"{name}_pool")(features)
    return keras.layers.Concatenate(name=f"{name}_pool")([
        keras.layers.GlobalAveragePooling2D(name=f"{name}_avg_pool")(features),
        keras.layers.GlobalMaxPooling2D(name=f"{name}_max_pool")(features)])


def _normalization(mode, name):
    """The pixel normalisation a backbone expects, as a standard Keras layer."""
    layer_name = f"{name}_normalize"
    if mode == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name=layer_name)
    if mode == "symmetric":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=layer_name)
    if mode in ("imagenet", "clip"):
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if mode == "imagenet" else (CLIP_MEAN, CLIP_STD)
        return keras.layers.Normalization(mean=mean, variance=[s * s for s in std], name=layer_name)
    if mode == "none":
        return keras.layers.Identity(name=layer_name)
    raise ValueError(f"Unknown image normalisation {mode!r}; expected unit, symmetric, imagenet, clip "
                     f"or none.")
