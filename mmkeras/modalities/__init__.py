"""Input kinds: what each input is, and its whole path (`Modality`).

`MODALITIES` is the registry of kinds (`kind: image` in app.yaml ->
`ImageInput`). It is read whenever a kind is asked for (an app's inputs, a
saved model's config), so a kind defined in user code is one entry:
`mmkeras.modalities.MODALITIES["mine"] = MyInput`.
"""

from mmkeras.modalities.audio import AudioInput
from mmkeras.modalities.category import CategoryInput
from mmkeras.modalities.image import ImageInput
from mmkeras.modalities.modality import Encoded, Modality
from mmkeras.modalities.raw_formats import FileBytesRaw, StringRaw
from mmkeras.modalities.sensor import SensorInput
from mmkeras.modalities.text import TextInput
from mmkeras.modalities.timeseries import TimeSeriesInput
from mmkeras.registry import lookup

MODALITIES = {
    "image": ImageInput,
    "text": TextInput,
    "audio": AudioInput,
    "sensor": SensorInput,
    "category": CategoryInput,
    "timeseries": TimeSeriesInput,
}


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
