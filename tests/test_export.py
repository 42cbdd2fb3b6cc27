"""Export: serving signatures, fresh-process loading, op check, atomicity."""

import base64
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras.data.decode import decode_batch
from mmkeras.export import ExportError, export, synthetic_inputs
from mmkeras.explain import reference_contributions
from mmkeras.serving import DevServer
from mmkeras.serving.op_check import check_serving_ops

LABELS = ["negative", "neutral", "positive"]


def all_modalities(multi_label=False, fusion="concat"):
    specs = [
        mmk.ImageInput("photo", size=(24, 24)),
        mmk.TextInput("review", sequence_length=12, vocabulary_size=60),
        mmk.AudioInput("voice", sample_rate=8000, seconds=0.5, num_mels=16),
        mmk.SensorInput("readings", features=["temperature", "current"]),
    ]
    adapt = {"review": ["great phone", "bad battery", "it is fine"] * 5,
             "readings": np.random.default_rng(0).normal(size=(15, 2))}
    model = mmk.build_model(specs, fusion=fusion, projection_dim=16, adapt_data=adapt,
                            task=mmk.Classification(LABELS, multi_label=multi_label))
    return model, specs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, specs = all_modalities()
    base = tmp_path_factory.mktemp("savedmodels") / "sentiment"
    return model, specs, export(model, base)


def test_export_writes_version_one_with_metadata_and_warmup(exported):
    model, specs, path = exported
    assert path.endswith(os.path.join("sentiment", "1"))
    assert os.listdir(os.path.dirname(path)) == ["1"]
    metadata = json.load(open(os.path.join(path, "assets.extra", "mmkeras.json")))
    assert metadata["labels"] == LABELS
    assert [i["name"] for i in metadata["inputs"]] == ["photo", "review", "voice", "readings"]
    assert metadata["versions"]["tensorflow"] == tf.__version__
    assert metadata["serving_version"] == "2.20"
    assert metadata["explain"]["modalities"] == ["photo", "review", "voice", "readings"]
    assert os.path.getsize(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")) > 0
    assert check_serving_ops(path) == []


def test_next_version_and_no_silent_overwrite(exported, tmp_path):
    model, specs, path = exported
    base = os.path.dirname(path)
    with pytest.raises(FileExistsError, match="already exists"):
        export(model, base, version=1, warmup=False)
    assert export(model, base, warmup=False).endswith("2")
    assert export(model, base, version=2, warmup=False, overwrite=True).endswith("2")
    assert sorted(os.listdir(base)) == ["1", "2"]  # replaced in place, no temp or old folders left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="atomic folder swap is Linux-only")
def test_overwrite_swaps_versions_without_a_moment_without_one(exported, tmp_path, monkeypatch):
    """Never renamed aside: a polling server finds version 1 (old or new) at every moment."""
    model, specs, path = exported
    base = tmp_path / "sentiment"
    first = export(model, base, warmup=False)
    stamp = os.stat(os.path.join(first, "saved_model.pb")).st_mtime_ns

    def rename(source, target):
        real_rename(source, target)
        assert os.path.isdir(first), "version 1 vanished during the overwrite"

    real_rename = os.rename
    monkeypatch.setattr(os, "rename", rename)
    assert export(model, base, version=1, warmup=False, overwrite=True) == first
    assert os.stat(os.path.join(first, "saved_model.pb")).st_mtime_ns != stamp
    assert sorted(os.listdir(base)) == ["1"]


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401
    path, inputs_file = sys.argv[1], sys.argv[2]
    raw = json.load(open(inputs_file))
    inputs = {k: tf.constant([bytes.fromhex(v) for v in vals]) if k in ("photo", "voice")
              else tf.constant(vals) for k, vals in raw.items()}
    signatures = tf.saved_model.load(path).signatures
    outputs = signatures["serving_default"](**inputs)
    explained = signatures["explain"](**inputs)
    leaked = [m for m in sys.modules if m.split(".")[0] in ("mmkeras", "keras_hub", "keras_cv", "tensorflow_io")]
    print(json.dumps({"probabilities": outputs["probabilities"].numpy().tolist(),
                      "classes": [c.decode() for c in outputs["classes"].numpy()],
                      "explained": {k: v.numpy().tolist() for k, v in explained.items() if k != "classes"},
                      "leaked": leaked}))
""")


def test_fresh_process_with_only_tf_and_tf_text_matches_predict(exported, tmp_path):
    model, specs, path = exported
    examples = synthetic_inputs(specs, count=4, seed=3)
    raw = {s.name: [e[s.name].hex() if isinstance(e[s.name], bytes) else e[s.name] for e in examples]
           for s in specs}
    (tmp_path / "inputs.json").write_text(json.dumps(raw))
    (tmp_path / "load.py").write_text(FRESH_PROCESS)
    result = subprocess.run([sys.executable, str(tmp_path / "load.py"), path, str(tmp_path / "inputs.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["leaked"] == []
    batch = {s.name: tf.constant([e[s.name] for e in examples], tf.float32 if s.kind == "sensor" else tf.string)
             for s in specs}
    decoded = decode_batch(batch, specs)
    expected = model.predict(tf.data.Dataset.from_tensor_slices(decoded).batch(4), verbose=0)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-4)
    assert served["classes"] == [LABELS[i] for i in expected.argmax(axis=1)]

    # The explain signature: the same probabilities, and per modality the predicted class's
    # probability with it minus without it; 0 for the modality each example 1-3 lacks.
    explained = served["explained"]
    np.testing.assert_allclose(explained["probabilities"], served["probabilities"], atol=1e-6)
    contributions = np.array(explained["modality_contributions"])
    assert contributions.shape == (4, len(specs))
    for example in (1, 2, 3):
        assert contributions[example, example % len(specs)] == 0.0
    reference = reference_contributions(model, {k: v.numpy() for k, v in decoded.items()})
    np.testing.assert_allclose(contributions, reference, atol=1e-4)
    assert np.abs(contributions[0]).max() > 0  # a complete example: the inputs do move the prediction
    for m, spec in enumerate(specs):
        np.testing.assert_allclose(explained[f"contribution_{spec.name}"], contributions[:, m])


def test_missing_inputs_are_served_and_serve_decoded_agrees(exported):
    model, specs, path = exported
    loaded = tf.saved_model.load(path)
    examples = synthetic_inputs(specs, count=4, seed=1)  # examples 1.. each miss one modality
    raw = {s.name: tf.constant([e[s.name] for e in examples], tf.float32 if s.kind == "sensor" else tf.string)
           for s in specs}
    served = loaded.signatures["serving_default"](**raw)
    decoded = loaded.signatures["serve_decoded"](**decode_batch(raw, specs))
    assert np.isfinite(served["probabilities"].numpy()).all()
    np.testing.assert_allclose(served["probabilities"], decoded["probabilities"], atol=1e-5)
    np.testing.assert_allclose(served["scores"], served["probabilities"].numpy().max(axis=1), atol=1e-6)


def test_an_empty_batch_is_refused_with_a_plain_message(exported):
    model, specs, path = exported
    raw = {s.name: tf.zeros([0, *s.shape]) if s.kind == "sensor" else tf.constant([], tf.string) for s in specs}
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one example"):
        tf.saved_model.load(path).signatures["serving_default"](**raw)


@pytest.mark.parametrize("counts", [(1, 3, 4, 4), (4, 4, 3, 1)])
def test_inputs_of_different_batch_sizes_are_refused_in_the_graph(exported, counts):
    """Not answered for the first input's count only: INVALID_ARGUMENT naming every input,
    from the graph itself, so TF Serving and the dev server answer the same."""
    model, specs, path = exported
    (example,) = synthetic_inputs(specs, count=1, seed=0)
    raw = {s.name: tf.constant([example[s.name]] * n, tf.float32 if s.kind == "sensor" else tf.string)
           for s, n in zip(specs, counts)}
    signature = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="same number of examples") as caught:
        signature(**raw)
    for spec, n in zip(specs, counts):
        assert f"{spec.name}: {n}" in caught.value.message
    with DevServer(os.path.dirname(os.path.dirname(path)), rest_port=0, grpc_port=0, poll_seconds=0) as server:
        rows = {name: value.numpy().tolist() for name, value in raw.items()}
        for spec in specs:
            if spec.kind != "sensor" and spec.kind != "text":
                rows[spec.name] = [{"b64": base64.b64encode(v).decode()} for v in rows[spec.name]]
            elif spec.kind == "text":
                rows[spec.name] = [v.decode() for v in rows[spec.name]]
        request = urllib.request.Request(f"{server.rest_url}/v1/models/sentiment:predict",
                                         data=json.dumps({"inputs": rows}).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=60)
        assert error.value.code == 400
        assert "same number of examples" in json.loads(error.value.read())["error"]


def test_multi_label_classes_join_labels_over_threshold(tmp_path):
    model, specs = all_modalities(multi_label=True, fusion="attention")
    path = export(model, tmp_path / "medical", warmup=False)
    loaded = tf.saved_model.load(path)
    raw = synthetic_inputs(specs, count=2)
    batch = {s.name: tf.constant([e[s.name] for e in raw], tf.float32 if s.kind == "sensor" else tf.string)
             for s in specs}
    outputs = loaded.signatures["serving_default"](**batch)
    for probabilities, classes in zip(outputs["probabilities"].numpy(), outputs["classes"].numpy()):
        expected = "|".join(label for label, p in zip(LABELS, probabilities) if p >= 0.5)
        assert classes.decode() == expected


@keras.saving.register_keras_serializable(package="mmkeras_tests")
class NoisyAtInference(keras.layers.Layer):
    """Adds noise even at inference: a random op in the serving graph."""

    def call(self, x):
        return x + tf.random.uniform(tf.shape(x))

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=x.dtype)


def test_export_refuses_random_ops_and_leaves_nothing(tmp_path):
    spec = mmk.SensorInput("readings", features=["a", "b"], mean=[0, 0], variance=[1, 1])
    x = spec.keras_input()
    task = mmk.Classification(["a", "b"])
    model = mmk.MultimodalClassifier({"readings": x}, task.head()(NoisyAtInference(name="noisy")(x)),
                                     specs=[spec], task=task)
    with pytest.raises(ExportError) as info:
        export(model, tmp_path / "bad", warmup=False)
    assert "random op 'RandomUniform'" in str(info.value) and "noisy" in str(info.value)
    assert os.listdir(tmp_path / "bad") == []


class DoubleModule(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(self, x):
        return {"y": tf.math.multiply(x, 2.0, name="resampler")}


def test_op_check_names_tensorflow_io_ops_and_their_nodes(tmp_path):
    # tensorflow-io's kernels no longer load, so no graph can call them here:
    # write a SavedModel, then turn its Mul into tensorflow-io's resampler op.
    module = DoubleModule()
    tf.saved_model.save(module, str(tmp_path / "io"), signatures={"serving_default": module.serve})
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((tmp_path / "io" / "saved_model.pb").read_bytes())
    renamed = 0
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "Mul":
                node.op, renamed = "IO>AudioResample", renamed + 1
    (tmp_path / "io" / "saved_model.pb").write_bytes(proto.SerializeToString())
    assert renamed
    for version in ("2.17", "2.20"):
        problems = check_serving_ops(str(tmp_path / "io"), version)
        assert any("'IO>AudioResample'" in p and "resampler" in p for p in problems), problems


class RoundRobinModule(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        import tensorflow_text as tf_text

        tokens = tf.strings.split(text)
        first, second = tf_text.RoundRobinTrimmer(max_seq_length=4).trim([tokens, tokens])
        return {"joined": tf.strings.reduce_join(first, axis=-1)}


def test_op_check_targets_the_tf_text_that_each_tf_serving_links(tmp_path):
    module = RoundRobinModule()
    tf.saved_model.save(module, str(tmp_path / "rr"), signatures={"serving_default": module.serve})
    # TF Serving 2.20 links TF Text 2.20, which has RoundRobinTrim; 2.17-2.19 link 2.12.1.
    assert check_serving_ops(str(tmp_path / "rr"), "2.20") == []
    for older in ("2.17", "2.18.0", "2.19"):
        problems = check_serving_ops(str(tmp_path / "rr"), older)
        assert any("RoundRobinTrim" in p and "TF Serving 2.1" in p for p in problems), problems
    with pytest.raises(ValueError, match="Unknown TF Serving version '2.16'.*2.17, 2.18, 2.19, 2.20"):
        check_serving_ops(str(tmp_path / "rr"), "2.16")


class WebPModule(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def serve(self, data):
        return {"pixels": tf.raw_ops.DecodeWebP(contents=data)}


def test_op_check_for_older_servers_uses_their_tensorflow_core_ops(tmp_path):
    # DecodeWebP is a core op since TensorFlow 2.20: TF Serving 2.17-2.19 lack it.
    module = WebPModule()
    tf.saved_model.save(module, str(tmp_path / "webp"), signatures={"serving_default": module.serve})
    assert check_serving_ops(str(tmp_path / "webp"), "2.20") == []
    assert any("'DecodeWebP'" in p for p in check_serving_ops(str(tmp_path / "webp"), "2.19"))


def test_export_records_its_target_and_refuses_ops_the_target_lacks(exported, tmp_path):
    model, specs, _ = exported
    path = export(model, tmp_path / "older", warmup=False, serving_version="2.17.0")
    assert json.load(open(os.path.join(path, "assets.extra", "mmkeras.json")))["serving_version"] == "2.17"
    with pytest.raises(ValueError, match="Unknown TF Serving version"):
        export(model, tmp_path / "bad", warmup=False, serving_version="3.0")
    assert not os.path.exists(tmp_path / "bad" / "1")


INTERRUPTED = textwrap.dedent("""
    import importlib, os, sys
    import mmkeras as mmk, numpy as np
    export_module = importlib.import_module("mmkeras.export")  # `mmk.export` is the function
    spec = mmk.SensorInput("readings", features=["a", "b"], mean=[0, 0], variance=[1, 1])
    model = mmk.build_unimodal(spec, mmk.Classification(["x", "y"]))
    def crash(*args, **kwargs):
        os._exit(3)  # the process dies after the SavedModel is written, before the rename
    export_module._write_metadata = crash
    export_module.export(model, sys.argv[1], warmup=False)
""")


def test_interrupted_export_leaves_no_loadable_version(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(INTERRUPTED)
    base = tmp_path / "models" / "crashy"
    result = subprocess.run([sys.executable, str(script), str(base)], capture_output=True, timeout=300)
    assert result.returncode == 3
    leftovers = os.listdir(base)
    assert leftovers and all(not name.isdigit() for name in leftovers)  # only the hidden temp folder
    from mmkeras.savedmodel import version_dirs

    assert list(version_dirs(str(base))) == []


def test_a_keras_file_from_one_process_exports_in_another_with_nothing_beside_it(exported, tmp_path):
    """The model carries its specs and task: `mmkeras export model.keras DIR`
    in a fresh process needs no app, no specs, no labels."""
    model, specs, _ = exported
    model.save(tmp_path / "model.keras")
    result = subprocess.run([sys.executable, "-m", "mmkeras.cli", "export", str(tmp_path / "model.keras"),
                             str(tmp_path / "served")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = json.load(open(tmp_path / "served" / "1" / "assets.extra" / "mmkeras.json"))
    # The model's own specs: adapted copies holding what they learned (sensor statistics).
    expected = [{k: v for k, v in spec.get_config().items() if k != "vocabulary"} for spec in model.specs]
    assert [{k: v for k, v in i.items() if k != "kind"} for i in metadata["inputs"]] == \
        json.loads(json.dumps(expected))  # exact specs: feature names, sample rates, sizes
    assert metadata["labels"] == LABELS


def test_export_refuses_a_model_that_does_not_describe_its_inputs(tmp_path):
    x = keras.Input((2,), name="readings")
    model = keras.Model({"readings": x}, keras.layers.Dense(2, activation="softmax", name="label")(x))
    with pytest.raises(TypeError, match="MultimodalClassifier"):
        export(model, tmp_path / "plain", warmup=False)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   tf.errors.PermissionDeniedError(None, None, "Read-only file system")])
def test_a_full_or_read_only_target_is_a_clean_error_and_earlier_versions_stay(tmp_path, monkeypatch, error):
    export_module = sys.modules["mmkeras.export"]
    spec = mmk.SensorInput("readings", features=["a", "b"], mean=[0, 0], variance=[1, 1])
    model = mmk.build_unimodal(spec, mmk.Classification(["x", "y"]))
    base = tmp_path / "models" / "m"
    first = export(model, base, warmup=False)
    write = export_module._write_saved_model

    def fail_half_way(model, export_dir):
        write(model, export_dir)  # the SavedModel is written, then the disk fills up
        raise error

    monkeypatch.setattr(export_module, "_write_saved_model", fail_half_way)
    with pytest.raises(ExportError, match=f"Could not write the export into {base}: .*(space|Read-only)"):
        export(model, base, warmup=False)
    assert os.listdir(base) == ["1"]  # no half version, no temporary folder
    assert tf.saved_model.load(first).signatures["serving_default"] is not None
    monkeypatch.setattr(export_module, "_write_saved_model", write)
    assert export(model, base, warmup=False).endswith("2")


def test_an_export_target_that_is_a_file_is_a_clean_error(tmp_path):
    spec = mmk.SensorInput("readings", features=["a", "b"], mean=[0, 0], variance=[1, 1])
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(ExportError, match="Could not write the export into"):
        export(mmk.build_unimodal(spec, mmk.Classification(["x", "y"])), tmp_path / "taken", warmup=False)


def test_the_dev_server_and_the_client_answer_the_explain_signature(exported, tmp_path, capsys):
    """`"signature_name": "explain"` over REST and gRPC, and `mmkeras predict --explain`: the
    contributions of a complete example, 0 for the input it leaves out."""
    from mmkeras.serving import Client
    from mmkeras.serving.client import build_arg_parser, run

    model, specs, path = exported
    complete = synthetic_inputs(specs, count=1, seed=5)[0]
    without_review = {**complete, "review": None}  # the client fills the missing value
    with DevServer(os.path.dirname(os.path.dirname(path)), rest_port=0, grpc_port=0, poll_seconds=0) as server:
        answers = []
        for protocol, target in (("rest", server.rest_url), ("grpc", server.grpc_target)):
            with Client(target, "sentiment", protocol=protocol) as client:
                answers.append(client.predict([complete, without_review], signature_name="explain"))
        image = tmp_path / "photo.png"
        image.write_bytes(complete["photo"])
        sound = tmp_path / "voice.wav"
        sound.write_bytes(complete["voice"])
        args = build_arg_parser().parse_args([
            f"photo=@{image}", f"review={complete['review']}", f"voice=@{sound}",
            f"readings={json.dumps(complete['readings'])}", "--server", server.rest_url, "--model", "sentiment",
            "--explain"])
        assert run(args) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert set(printed) >= {"probabilities", "classes", "modality_contributions", "contribution_voice"}
    rest, grpc = answers
    for answer in (rest, grpc):
        assert len(answer[0]["modality_contributions"]) == len(specs)
        assert answer[1]["contribution_review"] == 0.0 and answer[1]["modality_contributions"][1] == 0.0
        np.testing.assert_allclose(answer[0]["modality_contributions"], rest[0]["modality_contributions"], atol=1e-6)
    assert answer[0]["contribution_photo"] == pytest.approx(answer[0]["modality_contributions"][0])
