"""LiteRT export (issue 27): each kind converts with built-in ops and answers like
the Keras model through the pip runtime; quantized files stay close; what cannot
convert is refused before anything is written."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras import litert, litert_runtime
from mmkeras.tasks import label_output
from mmkeras.version_folder import ExportError

TASK = mmk.Classification(["ok", "scratch", "dent"])
MACHINES = np.array(["m1", "m2", "m3", "m1"])


def kinds():
    return {
        "image": mmk.ImageInput("photo", size=(32, 32), backbone="tiny_cnn"),
        "audio": mmk.AudioInput("sound", sample_rate=8000, seconds=0.5, num_mels=16),
        "sensor": mmk.SensorInput("readings", features=["a", "b"], mean=[0, 1], variance=[1, 4]),
        "timeseries": mmk.TimeSeriesInput("trace", features=["x", "y"], steps=16, mean=[0, 0], variance=[1, 1]),
        "category": mmk.CategoryInput("machine"),
    }


def inputs(spec, count, rng):
    """Decoded examples `[count, ...]` of one input, the last one missing."""
    if spec.kind == "category":
        return np.array([*rng.choice(MACHINES[:3], count - 2), "m9", ""], object)  # an unseen value, a missing one
    shape = {"image": (48, 40, 3), "audio": (4000,), "sensor": (2,), "timeseries": (16, 2)}[spec.kind]
    values = rng.uniform(0, 255, (count, *shape)) if spec.kind == "image" else rng.normal(size=(count, *shape))
    values = values.astype("float32")
    if spec.kind == "timeseries":
        values[:, :4] = np.nan  # a shorter series, padded at the front
        values[0, 8, 1] = np.nan  # one missing reading
    values[-1] = np.nan
    return values


def build(specs, sharpen=20.0):
    keras.utils.set_random_seed(0)
    adapt = {"machine": MACHINES}
    model = (mmk.build_unimodal(specs[0], TASK, projection_dim=16, adapt_data=adapt) if len(specs) == 1
             else mmk.build_model(specs, task=TASK, projection_dim=16, adapt_data=adapt))
    # Trained-looking weights: the probabilities of a fresh head sit near a third
    # (sharpening also multiplies a quantized file's error in the features).
    head = model.get_layer("label")
    head.set_weights([w * sharpen for w in head.get_weights()])
    return model


@pytest.mark.parametrize("kind", ["image", "audio", "sensor", "timeseries", "category"])
def test_each_kind_converts_and_answers_like_the_keras_model(kind, tmp_path):
    spec = kinds()[kind]
    model = build([spec])
    check = {spec.name: inputs(spec, 6, np.random.default_rng(1))}
    path = litert.export_litert(model, tmp_path / "edge", check_inputs=check)

    assert path == str(tmp_path / "edge" / "1") and sorted(os.listdir(path)) == ["mmkeras.json", "model.tflite"]
    content = open(os.path.join(path, "model.tflite"), "rb").read()
    runner = litert_runtime.interpreter(content).get_signature_runner("serving_default")
    assert list(runner.get_input_details()) == [spec.name] and list(runner.get_output_details()) == ["probabilities"]
    served = litert_runtime.predict(content, check)
    values = check[spec.name]
    expected = np.concatenate([label_output(model({spec.name: tf.constant(values[i:i + 1])}, training=False))
                               for i in range(len(values))])
    np.testing.assert_allclose(served, expected, atol=1e-4)
    assert np.isfinite(served).all()
    description = json.load(open(os.path.join(path, "mmkeras.json")))
    assert description["compared_with_keras"]["max_abs_difference"] <= 1e-4
    (entry,) = description["inputs"]
    assert entry["name"] == spec.name and entry["kind"] == kind
    assert entry["missing"] == ('the empty string ""' if kind == "category" else "NaN in every element")
    assert entry["shape"][0] == 1 and (entry["shape"] == [1, None, None, 3] if kind == "image" else True)


@pytest.fixture(scope="module")
def fused():
    specs = list(kinds().values())
    model = build(specs, sharpen=1.0)
    rng = np.random.default_rng(2)
    representative = {spec.name: inputs(spec, 24, rng) for spec in specs}
    representative["photo"] = representative["photo"][:, :32, :32]  # decoded at the model's size
    check = {spec.name: inputs(spec, 8, rng) for spec in specs}
    check["photo"] = check["photo"][:, :32, :32]
    return model, representative, check


@pytest.mark.parametrize("quantize, atol", [("float16", 1e-3), ("int8", 0.05)])
def test_quantized_files_are_smaller_and_stay_close(quantize, atol, fused, tmp_path):
    """Within `atol` of the Keras model on every check example, the last with every input missing."""
    model, representative, check = fused
    float32 = litert.convert(model)
    path = litert.export_litert(model, tmp_path, quantize=quantize, representative=representative,
                                check_inputs=check)
    content = open(os.path.join(path, "model.tflite"), "rb").read()
    assert len(content) < 0.6 * len(float32)
    description = json.load(open(os.path.join(path, "mmkeras.json")))
    assert description["quantize"] == quantize
    compared = description["compared_with_keras"]
    assert compared["examples"] == 8 and compared["max_abs_difference"] <= atol
    if quantize == "int8":
        # Float where int8 cannot compute (the FFT) or would lose the values (the log-mel
        # front end, the normalisation of raw features); the convolutions are int8.
        assert {"RFFT2D", "LOG"} <= set(description["float_ops"])
        assert "CONV_2D" not in description["float_ops"]


@pytest.mark.parametrize("spec, message", [
    (mmk.TextInput("note", vocabulary_size=50, sequence_length=8),
     "text input 'note': its tokenizer (TF Text / KerasHub string ops"),
    (mmk.CategoryInput("machine", num_oov_buckets=2), "category input 'machine': num_oov_buckets=2"),
])
def test_what_cannot_convert_is_refused_before_anything_is_written(spec, message, tmp_path):
    model = mmk.build_model([spec, kinds()["sensor"]], task=TASK, projection_dim=8,
                            adapt_data={"note": np.array(["a loud pump", "fine"]), "machine": MACHINES})
    with pytest.raises(ExportError, match="cannot run as a LiteRT model") as info:
        litert.export_litert(model, tmp_path / "edge")
    assert message in str(info.value)
    assert not os.path.exists(tmp_path / "edge")


def test_a_kind_that_does_not_say_it_cannot_convert_is_stopped_by_the_converter(tmp_path, monkeypatch):
    monkeypatch.setattr(mmk.TextInput, "edge_refusal", lambda self: None)
    model = mmk.build_unimodal(mmk.TextInput("note", vocabulary_size=50, sequence_length=8), TASK, projection_dim=8,
                               adapt_data={"note": np.array(["a loud pump", "fine"])})
    with pytest.raises(ExportError, match="Ops LiteRT has no built-in for: .*tf.CaseFoldUTF8"):
        litert.export_litert(model, tmp_path / "edge")
    assert not os.path.exists(tmp_path / "edge")


def test_int8_without_calibration_rows_is_refused(tmp_path):
    model = build([kinds()["sensor"]])
    with pytest.raises(ValueError, match="int8 quantization calibrates on training examples"):
        litert.export_litert(model, tmp_path, quantize="int8")
    with pytest.raises(ValueError, match=r"quantize must be one of \['none', 'float16', 'int8'\]"):
        litert.export_litert(model, tmp_path, quantize="int4")
    with pytest.raises(ValueError, match=r"representative has no array for input\(s\) \['readings'\]"):
        litert.export_litert(model, tmp_path, quantize="int8", representative={"reading": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="check_inputs: every input needs the same number of examples"):
        litert.export_litert(model, tmp_path, check_inputs={"readings": np.zeros((0, 2))})
    assert not os.listdir(tmp_path)


def test_an_app_whose_inputs_cannot_convert_says_so_before_training(tmp_path):
    from mmkeras.app import load_app, run_app, with_overrides

    app = with_overrides(load_app(os.path.join(os.path.dirname(__file__), "..", "apps", "sentiment")),
                         ["export.litert=int8"])
    with pytest.raises(ValueError, match="export.litert: this app cannot run as a LiteRT model:\n  text input 'review'"):
        run_app(app, work_dir=tmp_path / "run", num_examples=30, epochs=1)
    assert not os.path.exists(tmp_path / "run")
