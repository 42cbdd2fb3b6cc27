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

# TensorFlow 2.17 logs three harmless "Unable to register cuDNN/cuFFT/cuBLAS
# factory" lines at level E on every import. Hide C++ logs unless the user
# chose a level; Python errors are unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from mmkeras import serving  # noqa: E402
from mmkeras.builder import build_model, build_unimodal  # noqa: E402
from mmkeras.export import export  # noqa: E402
from mmkeras.modalities import AudioInput, ImageInput, SensorInput, TextInput  # noqa: E402
from mmkeras.tasks import Classification  # noqa: E402

__version__ = "0.1.0"
