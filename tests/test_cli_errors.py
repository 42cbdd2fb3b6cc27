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
