"""mmkeras: multimodal Keras models that TF Serving runs unchanged."""

from setuptools import find_packages, setup

# Why each bound:
# - tensorflow 2.20: the TensorFlow of the newest TF Serving release (2.20.0),
#   so every op an export holds is registered by the server too. <2.21 until
#   a TF Serving 2.21 exists to serve what 2.21 exports.
# - tensorflow-text 2.20.1+: what keras-hub 0.32 requires, and the TF Text
#   that TF Serving 2.20 links (same ops as 2.20.0).
# - keras <3.16: mmkeras uses a few private Keras attributes (KerasHub's
#   no-convert scope, `_convert_input_args`); a new minor is checked first.
# - keras-hub 0.32: the newest; its presets (SigLIP, DINOv2, Whisper, ...)
#   need Python >= 3.11. keras-nlp is not used (KerasHub replaced it).
# - keras-cv 0.9.0: frozen; imported only by mmkeras/backbones.py.
# - tensorflow-io 0.37.1: only its spectrogram functions (plain TF ops) are
#   used, by mmkeras/log_mel.py. It has no Python 3.13 wheel; there the same
#   log-mel is computed with tf.signal.
# - soundfile (libsndfile): FLAC/OGG/MP3 in training pipelines; WAV uses
#   core TF ops everywhere.
# - scikit-learn: the metrics it computes exactly (F1, ROC-AUC, ...).
# - keras-tuner 1.4.8: the newest; `mmkeras tune` (checked with Keras 3.15 and
#   TF 2.20: its Tuner, the three oracles and resuming a search).
INSTALL_REQUIRES = [
    "tensorflow>=2.20,<2.21",
    "tensorflow-text>=2.20.1,<2.21",
    "tensorflow-serving-api>=2.20,<2.21",
    "keras>=3.10,<3.16",
    "keras-hub>=0.32,<0.33",
    "keras-cv==0.9.0",
    "tensorflow-io==0.37.1; python_version < '3.13'",
    "soundfile>=0.12",
    "scikit-learn>=1.3",
    "keras-tuner>=1.4.8,<1.5",
    "tensorboard>=2.20,<2.21",
    "numpy>=1.26,<3",
    "pillow",
    "pyyaml",
    "matplotlib",
]

setup(
    name="mmkeras",
    version="0.2.0",
    description="Keras 3 multimodal models (image, text, audio, sensors) for TF Serving",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["mmkeras", "mmkeras.*"]),
    include_package_data=True,
    package_data={"mmkeras.serving": ["*.txt"]},  # the op lists
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # The LiteRT runtime (mmkeras.litert): 2.3 runs beside TensorFlow 2.20 in one
        # process (checked: 1.3.0 too, with the same outputs); the tests run it.
        "edge": ["ai-edge-litert>=2.3,<2.4"],
        "dev": ["pytest>=8", "ai-edge-litert>=2.3,<2.4"],
        "gpu": ["tensorflow[and-cuda]>=2.20,<2.21"],
    },
    entry_points={"console_scripts": ["mmkeras=mmkeras.cli:main"]},
)
