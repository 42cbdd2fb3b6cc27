"""Every error a user can cause prints one located message, not a traceback (issue 23, item 10)."""

import pytest
import yaml

from mmkeras import cli
from mmkeras.serving.errors import ServingError


def _export_error(message):
    from mmkeras.export import ExportError

    return ExportError(message)


@pytest.mark.parametrize("make_error", [
    lambda: TypeError("inputs[0] ('scan').size: expected [height, width], received 64"),
    lambda: FileExistsError("Version 1 already exists at savedmodels/x/1"),
    lambda: PermissionError("savedmodels/x is read-only"),
    lambda: _export_error("The SavedModel would not run on stock TF Serving 2.20"),
    lambda: ServingError("Servable not found", 404),
])
def test_user_errors_print_one_message_and_exit_1(make_error, monkeypatch, capsys):
    error = make_error()

    def handler(args):
        raise error

    monkeypatch.setattr(cli, "_validate", handler)
    assert cli.main(["data", "validate", "apps/sentiment"]) == 1
    err = capsys.readouterr().err
    assert str(error) in err and "Traceback" not in err
    with pytest.raises(type(error)):
        cli.main(["data", "validate", "apps/sentiment", "--debug"])


def test_a_broken_app_yaml_names_the_file_and_line(tmp_path, capsys):
    (tmp_path / "app.yaml").write_text("name: broken\ntraining: [epochs: 3\n")
    assert cli.main(["data", "validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "app.yaml" in err and "line 2" in err and "Traceback" not in err
    with pytest.raises(yaml.YAMLError):
        cli.main(["data", "validate", str(tmp_path), "--debug"])


def test_a_programming_error_keeps_its_traceback(monkeypatch):
    def handler(args):
        raise KeyError("a bug, not a user mistake")

    monkeypatch.setattr(cli, "_validate", handler)
    with pytest.raises(KeyError):
        cli.main(["data", "validate", "apps/sentiment"])


def _app_with(tmp_path, inputs, manifest="table.csv"):
    (tmp_path / "app.yaml").write_text(yaml.safe_dump({
        "name": "scans", "data": {"manifest": manifest, "label_column": "label", "labels": ["b", "a"]},
        "inputs": inputs}))
    return str(tmp_path)


@pytest.mark.parametrize("argv, inputs, message", [
    (["data", "validate"], [{"kind": "image", "name": "scan", "size": 64}],
     "inputs[0] ('scan'): size: expected [height, width] (two positive integers), received 64"),
    (["data", "validate", "--data", "nowhere.csv"], [{"kind": "text", "name": "note"}],
     "nowhere.csv not found, nor "),
    (["run", "--fusion", "gatd"], [{"kind": "text", "name": "note"}, {"kind": "category", "name": "site"}],
     "--fusion (model.fusion): expected one of ['concat', "),
])
def test_messages_say_what_to_write(argv, inputs, message, tmp_path, capsys):
    app = _app_with(tmp_path, inputs)
    assert cli.main([argv[0], *argv[1:2], app, *argv[2:]] if argv[0] == "data" else [argv[0], app, *argv[1:]]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert "did you mean 'gated'" in err if "gatd" in argv else "accepted keys" not in err


def test_a_run_that_fails_on_its_data_leaves_no_run_folder(tmp_path, capsys):
    (tmp_path / "table.csv").write_text("note,label\nfine,c\n")
    app = _app_with(tmp_path, [{"kind": "text", "name": "note"}])
    assert cli.main(["run", app, "--work-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "unknown label(s) ['c']; known: ['b', 'a']" in err  # in the config's order
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["run", "{nowhere}"], "No app config at"),
    (["data", "validate", "{typo}"], "training.patiense: unknown key (did you mean 'patience'?)"),
    (["run", "{sentiment}", "--set", "training.epochs=0"], "training.epochs: expected a value > 0"),
    (["run", "{sentiment}", "--epochs", "0"], "--epochs (training.epochs): expected a value > 0"),
])
def test_config_mistakes_are_answered_before_tensorflow_loads(argv, message, tmp_path):
    """Only the inputs and the fusion need Keras to be checked; the rest of app.yaml does not."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[1]
    typo = tmp_path / "typo"
    typo.mkdir()
    (typo / "app.yaml").write_text((root / "apps" / "sentiment" / "app.yaml").read_text().replace(
        "  patience:", "  patiense:"))
    paths = {"nowhere": tmp_path / "nowhere", "typo": typo, "sentiment": root / "apps" / "sentiment"}
    script = ("import sys\nfrom mmkeras.cli import main\ncode = main(sys.argv[1:])\n"
              "print(code, 'tensorflow' in sys.modules)")
    child = subprocess.run([sys.executable, "-c", script, *(a.format(**paths) for a in argv)], cwd=root,
                           capture_output=True, text=True, timeout=120)
    assert child.stdout.split() == ["1", "False"], child.stderr[-2000:]
    assert message in child.stderr
