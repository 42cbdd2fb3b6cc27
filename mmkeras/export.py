"""Export a model as a versioned SavedModel that stock TF Serving runs.

`serving_default` takes what clients hold (encoded image bytes, WAV bytes,
strings, floats) and decodes it with the same functions as the training
pipeline; `serve_decoded` takes decoded tensors; `explain` takes the same raw
inputs and adds each modality's contribution to the prediction
(`mmkeras/explain.py`). A version is written beside
its final folder, checked (ops, parity with `model.predict`), then renamed
into place, so a TF Serving polling `base_dir` never sees half a version.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras import modalities, savedmodel
from mmkeras.data.decode import decode_batch
from mmkeras.explain import explain_batch, reference_contributions
from mmkeras.multimodal_classifier import MultimodalClassifier
from mmkeras.tasks import label_output
from mmkeras.serving.op_check import DEFAULT_SERVING_VERSION, check_serving_ops, serving_minor
from mmkeras.version_folder import ExportError, clean_write_errors, write_version

PARITY_TOLERANCE = 1e-4


def export(model, base_dir, version=None, *, overwrite=False, sample_inputs=None,
           metrics=None, warmup=True, serving_version=DEFAULT_SERVING_VERSION):
    """Writes `model` to `base_dir/<version>/` as a servable SavedModel.

    Args:
        model: a `MultimodalClassifier` (what `mmk.build_model` /
            `build_unimodal` return, or one reloaded from `.keras`): its
            specs say how the signature decodes each input, its task gives
            the labels and threshold.
        base_dir: the model's folder in a TF Serving model base path.
        version: integer version; default: highest existing + 1.
        overwrite: replace an existing version.
        sample_inputs: raw examples for the parity check and warmup (a
            list of dicts of bytes/str/float lists); synthesised if None.
        metrics: evaluation metrics to store in the metadata.
        warmup: write TF Serving warmup requests to `assets.extra/`.
        serving_version: the TF Serving release the export must run on:
            `"2.20"` (TF Text 2.20 ops; the default) or `"2.17"`-`"2.19"`
            (TensorFlow 2.17 core ops, TF Text 2.12.1 ops). Recorded in the
            metadata.

    Returns:
        The version folder's path.

    Example:
    >>> mmk.export(model, "savedmodels/sentiment")  # doctest: +SKIP
    'savedmodels/sentiment/1'
    """
    if not isinstance(model, MultimodalClassifier):
        raise TypeError(f"export needs a MultimodalClassifier (what mmk.build_model and "
                        f"build_unimodal return): its specs say how to decode each input. "
                        f"Received: {type(model).__name__}")
    specs = model.specs
    serving_version = serving_minor(serving_version)
    base_dir = os.fspath(base_dir)

    def write(folder, version):
        with clean_write_errors(base_dir):
            _write_saved_model(model, folder)
        problems = check_serving_ops(folder, serving_version)
        if problems:
            raise ExportError(f"The SavedModel would not run on stock TF Serving {serving_version}:\n  "
                              + "\n  ".join(problems))
        samples = sample_inputs or synthetic_inputs(specs)
        check_parity(model, specs, folder, samples)
        with clean_write_errors(base_dir):
            _write_metadata(folder, model, version, metrics, serving_version)
            if warmup:
                from mmkeras.serving.warmup import write_warmup_requests

                write_warmup_requests(folder, os.path.basename(os.path.normpath(base_dir)), [samples])

    return write_version(base_dir, version, write, overwrite=overwrite)


def raw_signature(specs):
    """TensorSpecs of `serving_default`: what a client sends."""
    return {spec.name: tf.TensorSpec([None, *spec.raw_spec().shape], spec.raw_spec().dtype, name=spec.name)
            for spec in specs}


def _write_saved_model(model, export_dir):
    task = model.task
    labels = tf.constant(task.labels)

    def predict(decoded):
        probabilities = label_output(model(decoded, training=False))
        return _postprocess(tf.cast(probabilities, tf.float32), labels, task.multi_label, task.threshold)

    archive = keras.export.ExportArchive()
    archive.track(model)
    raw = raw_signature(model.specs)
    archive.add_endpoint(savedmodel.DEFAULT_SIGNATURE, lambda inputs: predict(decode_batch(inputs, model.specs)),
                         input_signature=[raw])
    decoded_signature = {name: tf.TensorSpec(model.input[name].shape, model.input[name].dtype, name=name)
                         for name in raw}
    archive.add_endpoint("serve_decoded", predict, input_signature=[decoded_signature])

    def explain(inputs):
        out = explain_batch(model, decode_batch(inputs, model.specs))
        contributions = out["modality_contributions"]
        named = {f"contribution_{spec.name}": contributions[:, m] for m, spec in enumerate(model.specs)}
        return {**_postprocess(out["probabilities"], labels, task.multi_label, task.threshold),
                "modality_contributions": contributions, **named}

    archive.add_endpoint(savedmodel.EXPLAIN_SIGNATURE, explain, input_signature=[raw])
    archive.write_out(export_dir, verbose=False)


def _postprocess(probabilities, labels, multi_label, threshold):
    scores = tf.reduce_max(probabilities, axis=-1)
    if multi_label:
        over = probabilities >= threshold
        names = tf.ragged.boolean_mask(tf.broadcast_to(labels, tf.shape(probabilities)), over)
        classes = tf.strings.reduce_join(names, axis=-1, separator="|")
    else:
        classes = tf.gather(labels, tf.argmax(probabilities, axis=-1))
    return {"probabilities": probabilities, "classes": classes, "scores": scores}


def synthetic_inputs(specs, count=3, seed=0):
    """Raw examples (each kind's `synthetic_raw`: PNG bytes, WAV bytes, text,
    floats), example 0 complete and each other missing one input (`missing_raw`)."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(count):
        example = {}
        for v, spec in enumerate(specs):
            missing = i > 0 and v == i % len(specs)  # example 0 is complete
            example[spec.name] = spec.missing_raw() if missing else spec.synthetic_raw(rng)
        examples.append(example)
    return examples


def _batch(examples, specs):
    """A list of raw example dicts -> dict of batched numpy arrays."""
    return {spec.name: spec.raw_batch([example[spec.name] for example in examples]) for spec in specs}


def check_parity(model, specs, export_dir, examples):
    """Saved signatures on raw bytes vs `model.predict` on the same decoded
    inputs: `serving_default`'s probabilities, and `explain`'s probabilities
    and contributions (against `explain.reference_contributions`)."""
    raw = {name: tf.constant(value) for name, value in _batch(examples, specs).items()}
    signatures = tf.saved_model.load(export_dir).signatures
    served = signatures[savedmodel.DEFAULT_SIGNATURE](**raw)["probabilities"].numpy()
    decoded = {name: value.numpy() for name, value in decode_batch(raw, specs).items()}
    expected = label_output(model.predict(_as_dataset(decoded), verbose=0))
    difference = float(np.max(np.abs(served - expected)))
    if not difference <= PARITY_TOLERANCE:
        raise ExportError(f"Parity check failed: the SavedModel and model.predict differ by "
                          f"{difference:.2e} (tolerance {PARITY_TOLERANCE:g}).")
    explained = signatures[savedmodel.EXPLAIN_SIGNATURE](**raw)
    explain_difference = max(
        float(np.max(np.abs(explained["probabilities"].numpy() - served))),
        float(np.max(np.abs(explained["modality_contributions"].numpy()
                            - reference_contributions(model, decoded)))))
    if not explain_difference <= PARITY_TOLERANCE:
        raise ExportError(f"Parity check failed: the explain signature differs from model.predict by "
                          f"{explain_difference:.2e} (tolerance {PARITY_TOLERANCE:g}).")
    return max(difference, explain_difference)


def _as_dataset(decoded):
    # Strings go through tf.data: Keras' numpy adapter rejects object arrays.
    return tf.data.Dataset.from_tensor_slices(decoded).batch(len(next(iter(decoded.values()))))


def _write_metadata(export_dir, model, version, metrics, serving_version):
    metadata = {
        "labels": model.task.labels,
        "multi_label": model.task.multi_label,
        "threshold": model.task.threshold,
        "version": version,
        "inputs": [{k: v for k, v in modalities.to_config(spec).items() if k != "vocabulary"}
                   for spec in model.specs],
        "signatures": {"serving_default": "raw client inputs", "serve_decoded": "decoded tensors",
                       savedmodel.EXPLAIN_SIGNATURE: "raw client inputs; also each modality's contribution "
                                          "(M + 1 forward passes)"},
        # The columns of the explain signature's `modality_contributions`.
        "explain": {"modalities": [spec.name for spec in model.specs],
                    "contribution": "the predicted class's probability with every input minus without "
                                    "this one (0 where the request left it out)"},
        # The TF Serving release whose ops the export was checked against.
        "serving_version": serving_version,
        "versions": {"mmkeras": _mmkeras_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__},
        "metrics": metrics or {},
    }
    path = os.path.join(export_dir, savedmodel.METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(metadata, f, indent=2, default=float)


def _mmkeras_version():
    import mmkeras

    return mmkeras.__version__
