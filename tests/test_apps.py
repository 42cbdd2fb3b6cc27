"""The three application templates, end to end on their demo data."""

import json
import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmkeras.app import load_app, prepare_data, raw_examples, run_app
from mmkeras.cli import main as cli_main
from mmkeras.serving import Client, DevServer
from serving_roundtrip import fresh_process_probabilities, predict_decoded

APPS = ["sentiment", "medical", "inspection"]
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def app_path(name):
    return os.path.join(HERE, "apps", name)


@pytest.mark.parametrize("name", APPS)
def test_app_runs_end_to_end_quickly(name, tmp_path):
    results = run_app(app_path(name), work_dir=tmp_path / "run", export_dir=tmp_path / "models" / name,
                      num_examples=40, epochs=1, verbose=0)
    report = results["report"]
    app = load_app(app_path(name))
    # Report files, baselines and an export that serves raw inputs.
    for file in ("metrics.json", "report.md", "report.html"):
        assert (tmp_path / "run" / "report" / file).exists()
    assert set(report["baselines"]["baselines"]) == {f"{spec['name']} only" for spec in app.inputs}
    assert json.load(open(tmp_path / "run" / "report" / "metrics.json"))
    assert results["export_path"] == str(tmp_path / "models" / name / "1")
    signature = tf.saved_model.load(results["export_path"]).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {spec["name"] for spec in app.inputs}
    assert "model (all modalities)" in results["results_table"]
    # The app's model section reaches the builder (every app pins feature_norm).
    normalised = [layer.name for layer in results["model"].layers
                  if layer.name.endswith("_feature_norm")]
    assert bool(normalised) == app.model.feature_norm
    # Demo data: each score beside the best the data allows.
    assert "of ceiling" in results["results_table"]
    assert set(report["ceilings"]) == {"model"} | set(report["baselines"]["baselines"])
    assert all(0 < c["value"] <= 1 for c in report["ceilings"].values())
    # The run's model.keras reloads silently and completely, optimizer state included.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = keras.models.load_model(results["model_path"])
    assert not [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    for saved, loaded in zip(results["model"].optimizer.variables, reloaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(saved, loaded)

    # Raw client inputs (file bytes, text, floats) of real demo examples: the
    # SavedModel, loaded where only TF and TF Text are imported, and the dev
    # server over REST and gRPC all agree with model.predict.
    specs = app.specs()
    _, (_, _, test) = prepare_data(app, None, tmp_path / "run", num_examples=40)
    examples = raw_examples(test, specs, count=3)
    expected = predict_decoded(results["model"], examples, specs)
    served = fresh_process_probabilities(results["export_path"], examples, specs, tmp_path)
    np.testing.assert_allclose(served, expected, atol=1e-4)
    with DevServer(str(tmp_path / "models"), rest_port=0, grpc_port=0, poll_seconds=0) as server:
        for client in (Client(server.rest_url, name), Client(server.grpc_target, name, protocol="grpc")):
            with client:
                answers = client.predict(examples)
            np.testing.assert_allclose([a["probabilities"] for a in answers], expected, atol=1e-4)


def test_cli_run_and_evaluate(tmp_path, capsys):
    work = str(tmp_path / "run")
    assert cli_main(["run", app_path("inspection"), "--examples", "30", "--epochs", "1",
                     "--fusion", "weighted", "--batch-size", "8", "--set", "training.patience=3",
                     "--work-dir", work, "--export-dir", str(tmp_path / "models"), "--no-baselines"]) == 0
    assert os.path.isdir(tmp_path / "models" / "1")
    model = keras.models.load_model(os.path.join(work, "model.keras"))
    assert model.get_layer("fusion").__class__.__name__ == "WeightedSumFusion"
    # export.litert: int8, beside the SavedModel, compared with the model on the test split.
    edge = json.load(open(tmp_path / "models" / "litert" / "1" / "mmkeras.json"))
    split = json.load(open(os.path.join(work, "split.json")))
    assert edge["quantize"] == "int8" and edge["compared_with_keras"]["examples"] == len(split["rows"]["test"])
    assert [entry["name"] for entry in edge["inputs"]] == [spec.name for spec in model.specs]
    # ... and from the command line, for any .keras file.
    keras_file = os.path.join(work, "model.keras")
    assert cli_main(["export", keras_file, str(tmp_path / "edge"), "--format", "litert",
                     "--quantize", "float16"]) == 0
    assert os.path.isfile(tmp_path / "edge" / "1" / "model.tflite")
    assert cli_main(["export", keras_file, str(tmp_path / "edge"), "--format", "litert", "--quantize", "int8"]) == 1
    assert "int8 quantization calibrates on training examples" in capsys.readouterr().err
    run_report = open(os.path.join(work, "report", "metrics.json")).read()

    # evaluate writes a new report each time, never over the run's.
    for n in (1, 2):
        assert cli_main(["evaluate", app_path("inspection"), "--model", os.path.join(work, "model.keras"),
                         "--work-dir", work]) == 0
        report = json.load(open(os.path.join(work, "evaluations", str(n), "metrics.json")))
    assert open(os.path.join(work, "report", "metrics.json")).read() == run_report
    assert "miss_rate" in report["metrics"] and report["num_examples"] == len(split["rows"]["test"])
    assert not set(split["rows"]["test"]) & set(split["rows"]["train"])

    # A test row that became invalid is an error, not a smaller test set.
    manifest_rows = open(split["manifest"]).read().splitlines()
    lost = split["rows"]["test"][0]
    os.remove(os.path.join(os.path.dirname(split["manifest"]), manifest_rows[lost].split(",")[0]))
    assert cli_main(["evaluate", app_path("inspection"), "--model", os.path.join(work, "model.keras"),
                     "--work-dir", work]) == 1
    assert f"1 of the {len(split['rows']['test'])} test rows" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--set", "training.patiense=3"], "training.patiense: unknown key (did you mean 'patience'?)"),
    (["--set", "inputs.x=1"], "settable sections are"),
    (["--fusion", "sum"], "--fusion (model.fusion): expected one of ['concat', "),
])
def test_cli_user_errors_print_a_message_not_a_traceback(args, message, tmp_path, capsys):
    argv = ["run", app_path("inspection"), "--examples", "30", "--epochs", "1", "--no-export",
            "--no-baselines", "--work-dir", str(tmp_path), *args]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    with pytest.raises(ValueError, match=re.escape(message)):
        cli_main(argv + ["--debug"])


def test_app_config_errors_name_the_file_and_the_input(tmp_path):
    config = open(os.path.join(app_path("inspection"), "app.yaml")).read()
    (tmp_path / "app.yaml").write_text(config.replace("sample_rate: 16000", "sr: 16000"))
    with pytest.raises(ValueError, match=r"app.yaml: inputs\[2\] \('machine_sound'\): .*'sr'.*"
                                         r"accepted keys: kind, name, sample_rate"):
        load_app(tmp_path).specs()
    (tmp_path / "app.yaml").write_text(config.replace("batch_size: 32", "batch_sise: 32"))
    with pytest.raises(ValueError, match=r"app.yaml: training.batch_sise: unknown key \(did you mean 'batch_size'\?\)"):
        load_app(tmp_path)


def test_load_app_rejects_bad_configs(tmp_path):
    (tmp_path / "app.yaml").write_text("name: x\ndata: {labels: [a, b]}\ninputs: [{kind: text}]\n")
    with pytest.raises(ValueError, match="label_column"):
        load_app(tmp_path)
    (tmp_path / "app.yaml").write_text(
        "name: x\ndata: {labels: [a, b], label_column: y}\ninputs: [{kind: text}]\n")
    with pytest.raises(ValueError, match=r"inputs\[0\] needs `kind` and `name`"):
        load_app(tmp_path)


@pytest.mark.slow  # minutes per app; the default run checks fusion on tests/test_learning.py's data
@pytest.mark.parametrize("name", APPS)
def test_fused_model_beats_every_unimodal_baseline(name, tmp_path):
    # A reduced but learnable setting: 700 demo examples, 12 epochs.
    results = run_app(app_path(name), work_dir=tmp_path / "run", num_examples=700, epochs=12,
                      export=False, verbose=0)
    comparison = results["report"]["baselines"]
    assert comparison["metric"] == results["report"]["headline"]["metric"]
    for baseline, entry in comparison["baselines"].items():
        assert comparison["model"] > entry["value"], (baseline, comparison)


def _inspection_app_with_renamed_image_column(tmp_path):
    """Demo inspection data whose image column is `photo_path`, and a copy of the app."""
    from mmkeras.data import demo

    manifest = demo.generate("inspection", tmp_path / "data", num_examples=12, seed=0)
    text = open(manifest).read()
    with open(manifest, "w") as f:
        f.write(text.replace("part_image", "photo_path", 1))  # the header only
    config = open(os.path.join(app_path("inspection"), "app.yaml")).read()
    return manifest, config


def test_input_column_mapping_reads_a_manifest_as_it_is(tmp_path):
    manifest, config = _inspection_app_with_renamed_image_column(tmp_path)
    (tmp_path / "app.yaml").write_text(config)
    with pytest.raises(ValueError, match="column 'part_image': column not found"):
        load_app(tmp_path).load_examples(manifest)
    (tmp_path / "app.yaml").write_text(config.replace("name: part_image,", "name: part_image, column: photo_path,"))
    app = load_app(tmp_path)
    examples, _ = app.load_examples(manifest)
    assert len(examples) == 12 and all(p.endswith(".jpg") for p in examples.columns["part_image"])
    assert [spec.name for spec in app.specs()] == ["part_image", "readings", "machine_sound", "machine",
                                                   "current_trace"]
    # A bad file is reported under the manifest's own column name.
    os.remove(examples.columns["part_image"][0])
    with pytest.raises(ValueError, match="column 'photo_path': file not found"):
        app.load_examples(manifest)


def test_cli_data_validate_summarises_or_lists_every_problem(tmp_path, capsys):
    manifest, config = _inspection_app_with_renamed_image_column(tmp_path)
    (tmp_path / "app.yaml").write_text(config.replace("name: part_image,", "name: part_image, column: photo_path,"))
    assert cli_main(["data", "validate", str(tmp_path), "--data", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "every row is valid" in out and "12 rows" in out
    assert "part_image (image): missing in 0; width 64-64 (median 64), height 64-64 (median 64)" in out
    assert "machine_sound (audio): missing in 0; seconds 1-1 (median 1), sample rates 16000" in out
    rows = open(manifest).read().splitlines()
    rows[3] = rows[3].replace(",ok", ",broken").replace(",scratch", ",broken").replace(
        ",dent", ",broken").replace(",contamination", ",broken")
    with open(manifest, "w") as f:
        f.write("\n".join(rows) + "\n")
    assert cli_main(["data", "validate", str(tmp_path), "--data", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "row 3, column 'label': unknown label(s) ['broken']" in out
