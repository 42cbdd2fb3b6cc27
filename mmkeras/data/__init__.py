"""Data: manifests and their validation, decoding, tf.data pipelines, TFRecords, demo data."""

from mmkeras.data.decode import decode_batch, decode_example, decode_image, decode_wav, resample
from mmkeras.data.manifest import Examples, ManifestError, load_examples, read_manifest
from mmkeras.data.pipeline import make_dataset
from mmkeras.data.splits import split_examples
