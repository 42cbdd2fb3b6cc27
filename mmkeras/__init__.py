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

import os

# TensorFlow logs four INFO lines on every import (CUDA drivers, oneDNN, CPU
# instructions). Hide INFO only, unless the user chose a level: TensorFlow's
# warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from mmkeras import serving  # noqa: E402
from mmkeras.builder import build_model, build_unimodal  # noqa: E402
from mmkeras.export import export  # noqa: E402
from mmkeras.finetune import unfreeze  # noqa: E402
from mmkeras.modalities import AudioInput, ImageInput, SensorInput, TextInput  # noqa: E402
from mmkeras.multimodal_classifier import MultimodalClassifier  # noqa: E402
from mmkeras.tasks import Classification  # noqa: E402
# Registers the losses and metrics `training.compile_model` uses, so a compiled
# `.keras` file loads after `import mmkeras` alone.
from mmkeras import training  # noqa: E402, F401

__version__ = "0.2.0"
