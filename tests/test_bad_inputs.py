"""The bad-input corpus (`bad_inputs.py`) through the training pipeline's row
validation and every serving path: the signature in a process importing only
TensorFlow and TF Text, and the dev server over REST and gRPC. Each case gets
its expected answer or an error naming the reason; nothing is silently
mis-predicted and the server keeps serving."""

import base64
import csv
import json
import math
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

import mmkeras as mmk
from bad_inputs import (AUDIO, FEATURES, IMAGE, SAMPLE_RATE, SENSOR, TEXT, WEBP_KINDS, after_junk, corpus,
                        docs_table, extensible_wav, float_wav, image_bytes, tone, wav, webp)
from mmkeras.data.decode import decode_batch, decode_image, decode_wav
from mmkeras.data.manifest import load_examples
from mmkeras.data.pipeline import finish
from mmkeras.serving import DevServer

LABELS = ["a", "b"]
CASES = corpus()
GOOD = {IMAGE: image_bytes("PNG"), AUDIO: wav(tone()), TEXT: "fine", SENSOR: [1.0, 2.0]}


def specs():
    return [mmk.ImageInput(IMAGE, size=(24, 24)),
            mmk.AudioInput(AUDIO, sample_rate=SAMPLE_RATE, seconds=0.5, num_mels=16),
            mmk.TextInput(TEXT, sequence_length=12, vocabulary_size=60),
            mmk.SensorInput(SENSOR, features=list(FEATURES))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = mmk.build_model(specs(), projection_dim=16, task=mmk.Classification(LABELS),
                            adapt_data={TEXT: ["great phone", "bad battery"] * 5,
                                        SENSOR: np.random.default_rng(0).normal(size=(10, 2))})
    base = tmp_path_factory.mktemp("models")
    path = mmk.export(model, base / "m")
    with DevServer(str(base), rest_port=0, grpc_port=0, poll_seconds=0) as server:
        yield path, server


def example_with(case):
    return {**GOOD, case.input: case.value}


# === Training pipeline: row-by-row validation ===


def test_every_file_and_cell_case_is_accepted_or_names_its_row_column_and_reason(tmp_path):
    cases = [c for c in CASES if c.pipeline is not None]
    rows = []
    for number, case in enumerate(cases, start=1):
        example = example_with(case)
        row = {"label": LABELS[number % 2], TEXT: example[TEXT]}
        for name, suffix in ((IMAGE, ".img"), (AUDIO, ".wav")):
            path = tmp_path / f"{number}-{name}{suffix}"
            path.write_bytes(example[name])
            row[name] = path.name
        row.update({f: _cell(v) for f, v in zip(FEATURES, example[SENSOR])})
        rows.append(row)
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    examples, errors = load_examples(manifest, specs(), "label", LABELS, on_error="skip",
                                     report_path=tmp_path / "skipped.csv")
    for number, case in enumerate(cases, start=1):
        row_errors = [e for e in errors if e.row == number]
        if case.pipeline in ("ok", "missing"):
            assert not row_errors, (case.name, row_errors)
            value = examples.columns[case.input][examples.rows.index(number)]
            is_missing = (np.isnan(value).all() if case.input == SENSOR else value == "")
            assert is_missing == (case.pipeline == "missing"), case.name
        else:
            columns = FEATURES if case.input == SENSOR else (case.input,)
            assert [e for e in row_errors if e.column in columns and case.pipeline in e.reason], \
                (case.name, row_errors)
    assert (tmp_path / "skipped.csv").exists()


def _cell(value):
    """A manifest cell: text as it is, NaN empty (missing), other numbers as Python writes them."""
    if isinstance(value, str):
        return value
    return "" if math.isnan(value) else repr(value)


# === One input's header, through the training pipeline and the serving decode ===


def _pipeline_and_serving_errors(spec, value):
    """The error of the tf.data pipeline's decode and of the serving signature's."""
    raw = tf.data.Dataset.from_tensor_slices(({spec.name: [value]}, [0]))
    serve = tf.function(lambda values: decode_batch({spec.name: values}, [spec]),
                        input_signature=[tf.TensorSpec([None], tf.string)])
    errors = []
    for run in (lambda: list(finish(raw, [spec], batch_size=1, training=False)),
                lambda: serve(tf.constant([value]))):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            run()
        errors.append(error.value.message)
    return errors


@pytest.mark.parametrize("chunk", list(WEBP_KINDS), ids=lambda c: c.decode().strip())
def test_webp_declared_size_is_read_exactly_from_each_header_kind(chunk):
    data = webp(chunk, size=(301, 77))
    assert decode_image(data, (4, 4), IMAGE, max_pixels=301 * 77).shape == (4, 4, 3)
    expected = "Input photo declares 301 x 77 pixels, more than the limit of 23176"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        decode_image(data, (4, 4), IMAGE, max_pixels=301 * 77 - 1)


@pytest.mark.parametrize("chunk", list(WEBP_KINDS), ids=lambda c: c.decode().strip())
def test_oversize_webp_is_refused_in_the_pipeline_and_the_serving_decode(chunk):
    spec = mmk.ImageInput(IMAGE, size=(8, 8), max_pixels=1000)
    for message in _pipeline_and_serving_errors(spec, webp(chunk, size=(40, 30))):
        assert "Input photo declares 40 x 30 pixels, more than the limit of 1000" in message


@pytest.mark.parametrize("value, received", [
    (wav(tone(), sample_width=3), "format code 1 with 24 bits per sample"),
    (wav(tone(), sample_width=1), "format code 1 with 8 bits per sample"),
    (float_wav(tone()), "format code 3 with 32 bits per sample"),
    (extensible_wav(tone()), "format code 65534 with 16 bits per sample"),
    (after_junk(wav(tone(), sample_width=3)), "format code 1 with 24 bits per sample"),
], ids=["24-bit", "8-bit", "float", "extensible", "24-bit after JUNK"])
def test_wav_other_than_16_bit_pcm_is_refused_naming_the_input(value, received):
    spec = mmk.AudioInput(AUDIO, sample_rate=SAMPLE_RATE, seconds=0.5, num_mels=16)
    expected = f"Input voice must be 16-bit PCM WAV; received {received}"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        decode_wav(value, SAMPLE_RATE, spec.num_samples, AUDIO)
    for message in _pipeline_and_serving_errors(spec, value):
        assert expected in message


def test_wav_header_check_walks_chunks_as_the_decoder_does():
    plain = decode_wav(wav(tone()), SAMPLE_RATE, 4000, AUDIO)
    np.testing.assert_array_equal(decode_wav(after_junk(wav(tone())), SAMPLE_RATE, 4000, AUDIO), plain)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input voice is not a complete WAV file"):
        decode_wav(wav(tone())[:30], SAMPLE_RATE, 4000, AUDIO)


# === Serving: the signature where only TF and TF Text are imported ===

FRESH = """
import base64, json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
answers = []
for request in json.load(open(sys.argv[2])):
    inputs = {name: tf.constant([base64.b64decode(v) for v in values]) if name != "readings"
              else tf.constant(values) for name, values in request.items()}
    try:
        answers.append({"probabilities": signature(**inputs)["probabilities"].numpy().tolist()})
    except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
        answers.append({"error": getattr(e, "message", str(e))})
print(json.dumps(answers))
"""


def _fresh_requests(examples):
    return [{name: [base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()]
             if name != SENSOR else [v] for name, v in example.items()} for example in examples]


def _check(case, answer, missing_answer, where):
    if case.serving in ("ok", "missing"):
        assert "error" not in answer, (where, case.name, answer)
        probabilities = np.asarray(answer["probabilities"])
        assert np.isfinite(probabilities).all(), (where, case.name)
        if case.serving == "missing":
            np.testing.assert_allclose(probabilities, missing_answer, atol=1e-5, err_msg=f"{where} {case.name}")
    else:
        expected = case.serving if isinstance(case.serving, tuple) else (case.serving,)
        assert "error" in answer and any(e in answer["error"] for e in expected), (where, case.name, answer)


def _missing_answers(answer_of):
    """The answer for each input marked missing (empty bytes / text, NaN readings)."""
    missing = {IMAGE: b"", AUDIO: b"", TEXT: "", SENSOR: [float("nan")] * 2}
    return {name: answer_of({**GOOD, name: value})["probabilities"] for name, value in missing.items()}


def test_signature_in_a_fresh_process_answers_or_refuses_each_case(exported, tmp_path):
    path, _ = exported
    missing = {IMAGE: b"", AUDIO: b"", TEXT: "", SENSOR: [float("nan")] * 2}
    examples = [example_with(c) for c in CASES] + [{**GOOD, n: v} for n, v in missing.items()]
    (tmp_path / "requests.json").write_text(json.dumps(_fresh_requests(examples)))
    (tmp_path / "fresh.py").write_text(FRESH)
    result = subprocess.run([sys.executable, str(tmp_path / "fresh.py"), path, str(tmp_path / "requests.json")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    missing_answers = dict(zip(missing, (a["probabilities"] for a in answers[len(CASES):])))
    for case, answer in zip(CASES, answers):
        _check(case, answer, missing_answers.get(case.input), "signature")


# === Serving: the dev server over REST and gRPC ===


def _rest(server, example):
    inputs = {}
    for name, value in example.items():
        if isinstance(value, bytes):
            inputs[name] = [{"b64": base64.b64encode(value).decode()}]
        else:
            inputs[name] = [value]
    body = json.dumps({"inputs": inputs}).encode()  # NaN and Infinity as TF Serving's JSON reads them
    request = urllib.request.Request(f"{server.rest_url}/v1/models/m:predict", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return {"probabilities": json.loads(response.read())["outputs"]["probabilities"]}
    except urllib.error.HTTPError as error:
        assert error.code == 400, error.code
        return {"error": json.loads(error.read())["error"]}


def _grpc(stub, example):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    for name, value in example.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto([value]))
    try:
        response = stub.Predict(request, timeout=120)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        return {"error": error.details()}
    return {"probabilities": tf.make_ndarray(response.outputs["probabilities"]).tolist()}


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_dev_server_answers_or_refuses_each_case_and_keeps_serving(exported, protocol):
    _, server = exported
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def answer_of(example):
            return _rest(server, example) if protocol == "rest" else _grpc(stub, example)

        missing_answers = _missing_answers(answer_of)
        for case in CASES:
            _check(case, answer_of(example_with(case)), missing_answers.get(case.input), protocol)
        assert "probabilities" in answer_of(GOOD)  # still serving


def test_docs_table_lists_every_case():
    table = (Path(__file__).parent.parent / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    assert docs_table() in table
