"""Everything `import mmkeras as mmk` offers, imported at once.

`mmkeras/__init__.py` imports this module on the first use of a public name, so
that `import mmkeras` and the `mmkeras` command stay free of TensorFlow until
something needs it. Importing it registers every mmkeras layer, loss and
metric with Keras (what loading a `.keras` file needs).

Example:
>>> from mmkeras import api
>>> "gated" in api.FUSIONS
True
"""

import keras

# Importing `training` registers the losses and metrics `compile_model` uses.
from mmkeras import evaluation, serving, training  # noqa: F401
from mmkeras.backbone_configs import IMAGE_BACKBONES  # noqa: F401
from mmkeras.builder import build_model, build_unimodal  # noqa: F401
from mmkeras.export import export  # noqa: F401
from mmkeras.finetune import unfreeze  # noqa: F401
from mmkeras.litert import export_litert  # noqa: F401
from mmkeras.fusion import FUSIONS  # noqa: F401
from mmkeras.modalities import (MODALITIES, AudioInput, CategoryInput, ImageInput, Modality,  # noqa: F401
                                SensorInput, TextInput, TimeSeriesInput)
from mmkeras.modalities.text_encoders import TEXT_ENCODERS  # noqa: F401
from mmkeras.multimodal_classifier import MultimodalClassifier  # noqa: F401
from mmkeras.tasks import Classification  # noqa: F401


def load_model(path, safe_mode=True, **kwargs):
    """Loads a `.keras` file written by mmkeras (or any Keras model).

    `keras.saving.load_model` with mmkeras's layers registered first and
    `safe_mode` on; `kwargs` go to Keras (`custom_objects`, `compile`).

    Example:
    >>> import mmkeras as mmk
    >>> model = mmk.load_model("runs/sentiment/model.keras")  # doctest: +SKIP
    """
    return keras.saving.load_model(path, safe_mode=safe_mode, **kwargs)
