"""mmkeras: multimodal Keras models that TF Serving runs unchanged.

Example:
>>> import mmkeras as mmk
>>> model = mmk.build_model(
...     inputs=[mmk.ImageInput("photo", size=(32, 32)), mmk.TextInput("review", vocabulary_size=100)],
...     fusion="gated",
...     task=mmk.Classification(labels=["negative", "positive"]),
...     adapt_data={"review": ["good phone", "bad battery"]},
... )
"""

import os as _os

# TensorFlow logs four INFO lines on every import (CUDA drivers, oneDNN, CPU
# instructions). Hide INFO only, unless the user chose a level: TensorFlow's
# warnings and errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# Importing `training` registers the losses and metrics `compile_model` uses, so
# a compiled `.keras` file loads after `import mmkeras` alone.
from mmkeras import evaluation, serving, training  # noqa: E402
from mmkeras.backbone_configs import IMAGE_BACKBONES  # noqa: E402
from mmkeras.builder import build_model, build_unimodal  # noqa: E402
from mmkeras.export import export  # noqa: E402
from mmkeras.finetune import unfreeze  # noqa: E402
from mmkeras.fusion import FUSIONS  # noqa: E402
from mmkeras.modalities import (MODALITIES, AudioInput, CategoryInput, ImageInput, Modality,  # noqa: E402
                                SensorInput, TextInput, TimeSeriesInput)
from mmkeras.modalities.text_encoders import TEXT_ENCODERS  # noqa: E402
from mmkeras.multimodal_classifier import MultimodalClassifier  # noqa: E402
from mmkeras.tasks import Classification  # noqa: E402

__version__ = "0.2.0"

# What `import mmkeras as mmk` offers: the builders and specs, export, the
# training / evaluation / serving kits, and the registries (input kinds,
# fusions, image backbones, text encoders), each a dict of name -> entry.
__all__ = [
    "AudioInput", "CategoryInput", "Classification", "FUSIONS", "IMAGE_BACKBONES", "ImageInput", "MODALITIES",
    "Modality", "MultimodalClassifier", "SensorInput", "TEXT_ENCODERS", "TextInput", "TimeSeriesInput",
    "build_model", "build_unimodal",
    "evaluation", "export", "serving", "training", "unfreeze",
]
