"""mmkeras: multimodal Keras models that TF Serving runs unchanged."""

from setuptools import find_packages, setup

# TensorFlow is held at 2.17: tensorflow-io 0.37.1's C++ kernels (audio decode,
# resample) load on 2.17 and fail on 2.18+. Everything else is pinned to the
# releases that build against it.
INSTALL_REQUIRES = [
    "tensorflow>=2.17.1,<2.18",
    "tensorflow-text>=2.17.0,<2.18",
    "tensorflow-io==0.37.1",
    "keras>=3.9,<4",
    "keras-cv==0.9.0",
    "keras-hub==0.31.*",
    "keras-nlp==0.31.*",
    "tensorboard>=2.17,<2.18",
    # keras-cv imports tensorflow-datasets, whose newest tensorflow-metadata
    # needs protobuf 5; TF 2.17 runs on protobuf 4.
    "tensorflow-metadata<1.17",
    "protobuf>=4.25,<5",
    "tensorflow-serving-api>=2.17,<2.18",
    "numpy<2",
    "pillow",
    "pyyaml",
    "matplotlib",
]

setup(
    name="mmkeras",
    version="0.1.0",
    description="Keras 3 multimodal models (image, text, audio, sensors) for TF Serving",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["mmkeras", "mmkeras.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "dev": ["pytest>=8"],
        "gpu": ["tensorflow[and-cuda]>=2.17.1,<2.18"],
    },
    entry_points={"console_scripts": ["mmkeras=mmkeras.cli:main"]},
)
