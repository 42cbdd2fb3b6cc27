"""Modality specs: what each input is and how the model encodes it."""

from mmkeras.modalities.audio import AudioInput
from mmkeras.modalities.modality import Encoded, Modality
from mmkeras.modalities.image import ImageInput
from mmkeras.modalities.sensor import SensorInput
from mmkeras.modalities.text import TextInput
from mmkeras.registry import lookup

MODALITIES = {cls.kind: cls for cls in (ImageInput, TextInput, AudioInput, SensorInput)}


def from_config(config):
    """Rebuilds a spec from `{"kind": ..., **spec.get_config()}`.

    Example:
    >>> from_config({"kind": "audio", "name": "voice", "seconds": 2.0}).num_samples
    32000
    """
    config = dict(config)
    kind = config.pop("kind")
    return lookup(MODALITIES, kind, "modality kind").from_config(config)


def to_config(spec):
    return {"kind": spec.kind, **spec.get_config()}
