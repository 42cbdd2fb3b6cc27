"""Export a model as a LiteRT (`.tflite`) file that runs on a small device.

The file has one signature, `serving_default`: one input per modality, named
after it, taking one example's decoded value (batch 1; each kind's
`edge_spec`: an image float32 `[1, H, W, 3]` in 0..255 at any size, a
waveform, features, a series, a category string), and `probabilities` out.
Resizing, normalisation, the log-mel front end and missing inputs (NaN, or
"" for strings) are handled inside, as in the Keras model.

Only LiteRT built-in ops: the pip runtime (`ai-edge-litert`) has no delegate
for TensorFlow ops. An input that cannot convert (a text tokenizer) is refused
before anything is written. The version folder (`model.tflite` and
`mmkeras.json`, which says what each input expects and how the file compared
with the Keras model) appears whole or not at all (`version_folder`).
"""

import json
import os
import tempfile
from importlib import metadata

import keras
import numpy as np
import tensorflow as tf

from mmkeras import litert_runtime, modalities
from mmkeras.app_config import LITERT_QUANTIZATIONS
from mmkeras.multimodal_classifier import MultimodalClassifier
from mmkeras.savedmodel import DEFAULT_SIGNATURE
from mmkeras.tasks import label_output
from mmkeras.version_folder import ExportError, clean_write_errors, write_version

MODEL_FILE = "model.tflite"
METADATA_FILE = "mmkeras.json"
# A float32 file computes what the Keras model does; beyond this, export stops.
FLOAT32_TOLERANCE = 1e-4
# int8 calibration runs the float model on each example alone: a few hundred cover the ranges.
CALIBRATION_EXAMPLES = 200



def export_litert(model, base_dir, version=None, *, quantize="none", representative=None,
                  check_inputs=None, overwrite=False):
    """Writes `model` to `base_dir/<version>/model.tflite` with its `mmkeras.json`.

    Args:
        model: a `MultimodalClassifier`.
        base_dir: the LiteRT model's folder, e.g. `savedmodels/inspection/litert`.
        version: integer version; default: highest existing + 1.
        quantize: `"none"` (float32), `"float16"` (weights) or `"int8"`
            (weights and activations, calibrated on `representative`).
        representative: decoded training examples, `{input name: array [N, ...]}`;
            required for int8.
        check_inputs: decoded examples the file is compared on against the
            Keras model (default: the kinds' synthetic examples, one complete
            and others each missing an input). A float32 file that differs by
            more than 1e-4 is not written.
        overwrite: replace an existing version.

    Returns:
        The version folder's path.

    Example:
    >>> import mmkeras as mmk, tempfile
    >>> model = mmk.build_unimodal(mmk.SensorInput("readings", ["a", "b"], mean=[0, 0], variance=[1, 1]),
    ...                            mmk.Classification(["ok", "bad"]), projection_dim=8)
    >>> path = export_litert(model, tempfile.mkdtemp())
    >>> sorted(os.listdir(path))
    ['mmkeras.json', 'model.tflite']
    """
    if not isinstance(model, MultimodalClassifier):
        raise TypeError(f"export_litert needs a MultimodalClassifier (what mmk.build_model and build_unimodal "
                        f"return). Received: {type(model).__name__}")
    _check_quantize(quantize, representative)
    for what, arrays in (("representative", representative), ("check_inputs", check_inputs)):
        _check_arrays(what, arrays, model.specs)
    refusals = [reason for spec in model.specs if (reason := spec.edge_refusal())]
    if refusals:
        raise ExportError("This model cannot run as a LiteRT model (built-in ops only):\n  " + "\n  ".join(refusals))
    content = convert(model, quantize, representative)
    check_inputs = check_inputs if check_inputs is not None else synthetic_decoded(model.specs)
    comparison = litert_runtime.compare(model, content, check_inputs)
    if quantize == "none" and not comparison["max_abs_difference"] <= FLOAT32_TOLERANCE:
        raise ExportError(f"Parity check failed: the LiteRT model and the Keras model differ by "
                          f"{comparison['max_abs_difference']:.2e} (tolerance {FLOAT32_TOLERANCE:g}).")

    def write(folder, version):
        with clean_write_errors(base_dir):
            os.makedirs(folder)
            with open(os.path.join(folder, MODEL_FILE), "wb") as file:
                file.write(content)
            description = _metadata(model, version, quantize, comparison, content)
            with open(os.path.join(folder, METADATA_FILE), "w", encoding="utf-8") as file:
                json.dump(description, file, indent=2)

    return write_version(base_dir, version, write, overwrite=overwrite)


def _check_quantize(quantize, representative):
    if quantize not in LITERT_QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {list(LITERT_QUANTIZATIONS)}. Received: {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("int8 quantization calibrates on training examples: pass representative= (the CLI: "
                         "--data MANIFEST)")


def _check_arrays(what, arrays, specs):
    """Decoded example arrays hold every input, each with the same number of examples."""
    if arrays is None:
        return
    absent = [spec.name for spec in specs if spec.name not in arrays]
    if absent:
        raise ValueError(f"{what} has no array for input(s) {absent}; it holds {sorted(arrays)}")
    counts = {spec.name: len(arrays[spec.name]) for spec in specs}
    if len(set(counts.values())) != 1 or not next(iter(counts.values())):
        raise ValueError(f"{what}: every input needs the same number of examples, at least one. "
                         f"Received: {counts}")


def edge_signature(specs):
    """TensorSpecs of the LiteRT signature: batch 1, named after the inputs."""
    return {spec.name: tf.TensorSpec([1, *spec.edge_spec().shape], spec.edge_spec().dtype, name=spec.name)
            for spec in specs}


def convert(model, quantize="none", representative=None):
    """The model's `.tflite` bytes, built-in ops only; ExportError naming the ops LiteRT lacks."""
    def probabilities(inputs):
        return {"probabilities": tf.cast(label_output(model(inputs, training=False)), tf.float32)}

    with tempfile.TemporaryDirectory() as saved:
        # Through a SavedModel: the signature keeps the input names, and the
        # converter freezes every variable (a concrete function with the model
        # left a BatchNormalization variance unread: NaN out).
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(DEFAULT_SIGNATURE, probabilities, input_signature=[edge_signature(model.specs)])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[DEFAULT_SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = lambda: calibration_examples(model.specs, representative)
            converter._experimental_calibrate_only = True  # quantized below, front ends left in float
        try:
            content = converter.convert()
        except Exception as e:  # the converter raises ConverterError and others
            raise ExportError(_conversion_failure(str(e))) from None
    return _quantize_int8(content, model.specs) if quantize == "int8" else content


def _quantize_int8(calibrated, specs):
    """A calibrated model quantized to int8 but the kinds' `edge_float_layers`
    (what `tf.lite.experimental.QuantizationDebugger` does to keep layers in float)."""
    from tensorflow.lite.python import convert as lite_convert

    layers = [layer for spec in specs for layer in spec.edge_float_layers()]
    nodes = litert_runtime.output_names(calibrated, layers)
    return lite_convert.mlir_quantize(calibrated, denylisted_nodes=nodes)


def _conversion_failure(message):
    """The converter's long message (MLIR included) -> the ops it could not convert."""
    ops = sorted({line.split("'")[1] for line in message.splitlines()
                  if "is neither a custom op nor a flex op" in line and "'" in line})
    if not ops:
        return f"The model does not convert to LiteRT with built-in ops only:\n{message[-2000:]}"
    return (f"The model does not convert to LiteRT with built-in ops only. Ops LiteRT has no built-in "
            f"for: {', '.join(ops)}.")


def representative_arrays(examples, specs):
    """Decoded inputs of the first `CALIBRATION_EXAMPLES` of `examples` (training rows), for int8."""
    from mmkeras.data.pipeline import decoded_arrays
    from mmkeras.data.splits import subset

    return decoded_arrays(subset(examples, range(min(len(examples), CALIBRATION_EXAMPLES))), specs)


def calibration_examples(specs, representative):
    """int8 calibration: each training example as a batch of one, as it is.

    Examples forced to miss an input are left out: calibration takes each
    tensor's min and max, and one such example widened the ranges after the
    fusion enough to cost the trained inspection model 0.024 macro-F1 (seed 1;
    with the front ends in float, missing inputs are no better for it either).
    """
    count = len(next(iter(representative.values())))
    for i in range(count):
        yield {spec.name: np.asarray(representative[spec.name][i:i + 1]) for spec in specs}


def synthetic_decoded(specs):
    """The SavedModel export's synthetic examples (`export.synthetic_inputs`), decoded."""
    from mmkeras.export import synthetic_inputs

    return decoded(specs, synthetic_inputs(specs))


def decoded(specs, examples):
    """Raw examples (dicts of what a client sends) -> `{name: decoded array [N, ...]}`."""
    from mmkeras.data.decode import decode_batch

    raw = {spec.name: tf.constant(spec.raw_batch([example[spec.name] for example in examples])) for spec in specs}
    return {name: value.numpy() for name, value in decode_batch(raw, specs).items()}


def _metadata(model, version, quantize, comparison, content):
    task = model.task
    return {
        "format": "litert",
        "file": MODEL_FILE,
        "version": version,
        "quantize": quantize,
        "signature": DEFAULT_SIGNATURE,
        "labels": task.labels,
        "multi_label": task.multi_label,
        "threshold": task.threshold,
        "inputs": [_input_description(spec) for spec in model.specs],
        "outputs": {"probabilities": f"float32 [1, {len(task.labels)}], one per label, in the order of labels"},
        "compared_with_keras": comparison,
        "float_ops": litert_runtime.float_ops(content) if quantize == "int8" else None,
        "made_with": {"tensorflow": tf.__version__, "runtime": f"ai-edge-litert {metadata.version('ai-edge-litert')}"},
    }


def _input_description(spec):
    edge = spec.edge_spec()
    strings = edge.dtype == tf.string
    return {"name": spec.name, "kind": spec.kind,
            "dtype": "string" if strings else edge.dtype.name,
            "shape": [1, *edge.shape.as_list()],
            "missing": 'the empty string ""' if strings else "NaN in every element",
            "config": {k: v for k, v in modalities.to_config(spec).items() if k != "vocabulary"}}
