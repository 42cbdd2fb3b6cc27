"""mmkeras: multimodal Keras models that TF Serving runs unchanged.

Example:
>>> import mmkeras as mmk
>>> model = mmk.build_model(
...     inputs=[mmk.ImageInput("photo", size=(32, 32)), mmk.TextInput("review", vocabulary_size=100)],
...     fusion="gated",
...     task=mmk.Classification(labels=["negative", "positive"]),
...     adapt_data={"review": ["good phone", "bad battery"]},
... )

`import mmkeras` is light: TensorFlow, Keras and every mmkeras layer are
imported (and registered with Keras) on the first use of a name below, so the
`mmkeras` command answers `--help`, usage errors and REST predictions without
them. Reload a `.keras` file with `mmk.load_model(path)`.
"""

import os as _os

# TensorFlow logs four INFO lines on every import (CUDA drivers, oneDNN, CPU
# instructions). Hide INFO only, unless the user chose a level: TensorFlow's
# warnings and errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.2.0"

# What `import mmkeras as mmk` offers: the builders and specs, export and
# load_model, the training / evaluation / serving kits, and the registries
# (input kinds, fusions, image backbones, text encoders), each a dict of
# name -> entry. They live in `mmkeras/api.py`.
__all__ = [
    "AudioInput", "CategoryInput", "Classification", "FUSIONS", "IMAGE_BACKBONES", "ImageInput", "MODALITIES",
    "Modality", "MultimodalClassifier", "SensorInput", "TEXT_ENCODERS", "TextInput", "TimeSeriesInput",
    "build_model", "build_unimodal",
    "evaluation", "export", "export_litert", "load_model", "serving", "training", "unfreeze",
]


def __getattr__(name):
    # PEP 562: called only for a name the module does not hold yet.
    if name not in __all__:
        raise AttributeError(f"module 'mmkeras' has no attribute {name!r}")
    from mmkeras import api

    globals().update({public: getattr(api, public) for public in __all__})
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(__all__))
