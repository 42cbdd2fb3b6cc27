"""The app.yaml schema (`mmkeras.config`): unknown keys, bad values, overrides, README."""

import dataclasses
import os
import re

import pytest
import yaml

from mmkeras import config, training
from mmkeras.app import compile_app_model, load_app, with_overrides

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSPECTION = os.path.join(HERE, "apps", "inspection", "app.yaml")


def edited_app(tmp_path, old, new):
    """A copy of the inspection app.yaml with `old` replaced by `new`; its path."""
    text = open(INSPECTION).read()
    assert old in text
    (tmp_path / "app.yaml").write_text(text.replace(old, new))
    return str(tmp_path / "app.yaml")


def test_a_misspelled_key_is_an_error_naming_its_path(tmp_path):
    file = edited_app(tmp_path, "  class_weights: true", "  class_weight: true")
    with pytest.raises(ValueError, match=re.escape(
            f"{file}: training.class_weight: unknown key (did you mean 'class_weights'?); "
            f"allowed: epochs, batch_size, optimizer")):
        load_app(file)
    file = edited_app(tmp_path, "\ntraining:", "\ntrainig:")
    with pytest.raises(ValueError, match=re.escape(f"{file}: trainig: unknown key (did you mean 'training'?)")):
        load_app(file)


@pytest.mark.parametrize("old, new, message", [
    ("epochs: 60", "epochs: sixty", "training.epochs: expected an integer. Received: 'sixty'"),
    ("batch_size: 32", "batch_size: 32.5", "training.batch_size: expected an integer. Received: 32.5"),
    ("learning_rate: 0.002", "learning_rate: -0.1", "training.learning_rate: expected a value > 0"),
    ("validation_fraction: 0.15", "validation_fraction: 1.5",
     "data.validation_fraction: expected a fraction between 0 and 1"),
    ("labels: [ok, scratch, dent, contamination]", "labels: ok scratch dent contamination",
     "data.labels: expected a list of strings. Received: 'ok scratch dent contamination'"),
    ("multi_label: false", "multi_label: 0", "data.multi_label: expected true or false. Received: 0"),
    ("on_error: raise", "on_error: ignore", "data.on_error: expected one of ['raise', 'skip']"),
    ("fusion: concat", "fusion: sum", "model.fusion: expected one of ['concat', 'weighted'"),
    ('serving_version: "2.20"', "serving_version: 2.20",  # YAML reads 2.20 as the number 2.2
     "export.serving_version: expected a string. Received: 2.2"),
    ("normal_label: ok", "normal_label: okay", "evaluation.normal_label: expected one of data.labels "
     "['ok', 'scratch', 'dent', 'contamination'] (did you mean 'ok'?)"),
    ("headline: macro_f1", "headline: macro_f2", "evaluation.headline: unknown headline 'macro_f2' (did you "
     "mean 'macro_f1'?); a single-label app offers: accuracy, macro_f1, roc_auc_macro, pr_auc_macro, ece, "
     "miss_rate, false_alarm_rate"),
    ("headline: macro_f1", "headline: subset_accuracy", "evaluation.headline: unknown headline "
     "'subset_accuracy' (did you mean 'accuracy'?); a single-label app offers"),
    ("headline: macro_f1\n  normal_label: ok", "headline: miss_rate\n  normal_label: null",
     "evaluation.headline: headline 'miss_rate' compares against the normal class: set evaluation.normal_label"),
    ("multi_label: false", "multi_label: true", "evaluation.normal_label: applies to single-label apps"),
    ("test_fraction: 0.15", "test_fraction: 0.9", "data.validation_fraction + data.test_fraction must be < 1"),
])
def test_a_bad_value_is_an_error_naming_its_path(tmp_path, old, new, message):
    file = edited_app(tmp_path, old, new)
    with pytest.raises(ValueError, match=re.escape(f"{file}: {message}")):
        load_app(file)


def test_a_number_yaml_reads_as_a_string_is_still_a_number(tmp_path):
    # YAML 1.1 reads 2e-3 (no dot) as the string "2e-3".
    app = load_app(edited_app(tmp_path, "learning_rate: 0.002", "learning_rate: 2e-3"))
    assert app.training.learning_rate == 0.002


def test_overrides_are_checked_like_the_file():
    app = load_app(INSPECTION)
    epochs = app.training.epochs
    assert epochs != 3
    assert with_overrides(app, ["training.epochs=3"]).training.epochs == 3
    assert app.training.epochs == epochs  # the app itself is unchanged
    with pytest.raises(ValueError, match=re.escape(
            f"{INSPECTION} (--set training.epochs=ten): training.epochs: expected an integer")):
        with_overrides(app, ["training.epochs=ten"])
    with pytest.raises(ValueError, match=re.escape("training.patiense: unknown key (did you mean 'patience'?)")):
        with_overrides(app, ["training.patiense=3"])
    with pytest.raises(ValueError, match=re.escape("training.clipnorm: expected a value > 0. Received: -1.0")):
        with_overrides(app, ["training.clipnorm=-1"])


def test_clipnorm_and_auxiliary_loss_weight_reach_compile_model(tmp_path, monkeypatch):
    received = {}
    monkeypatch.setattr(training, "compile_model", lambda model, **options: received.update(options))
    app = load_app(edited_app(tmp_path, "  class_weights: true",
                              "  class_weights: true\n  clipnorm: 0.5\n  auxiliary_loss_weight: 0.1"))
    compile_app_model(None, app, total_steps=10)
    assert (received["clipnorm"], received["auxiliary_loss_weight"]) == (0.5, 0.1)
    compile_app_model(None, with_overrides(app, ["training.clipnorm=null"]), total_steps=10)
    assert received["clipnorm"] is None


def readme_table():
    """`{key: default cell}` of README.md's "App configuration" table."""
    text = open(os.path.join(HERE, "README.md")).read()
    table = text[text.index("| key | default | meaning |"):]
    table = table[:table.index("\n\n")].splitlines()[2:]
    cells = [row.split(" | ")[:2] for row in table]
    return {key.strip("|` "): default for key, default in cells}


def test_the_readme_table_lists_every_key_with_its_default():
    table = readme_table()
    table.pop("inputs[i]")  # modality specs: each spec's own arguments
    fields = {f"{section}.{field.name}": field
              for section, cls in config.SECTIONS.items() for field in dataclasses.fields(cls)}
    assert sorted(table) == sorted(fields)
    for key, field in fields.items():
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            assert table[key] == "required", key
        else:
            default = field.default_factory() if field.default is dataclasses.MISSING else field.default
            assert yaml.safe_load(table[key].strip("`")) == default, key
