"""The app.yaml schema (`mmkeras.app_config`): unknown keys, bad values, overrides, README."""

import dataclasses
import inspect
import os
import re
import types

import keras
import numpy as np
import pytest
import yaml

import mmkeras as mmk
from mmkeras import app_config, evaluation, fusion, training
from mmkeras.app import App, build_app_model, compile_app_model, load_app, with_overrides
from mmkeras.fusion import FusionLayer
from mmkeras.fusion.masking import masked_softmax, weighted_sum

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
    ("fusion: concat", "fusion: gate", "model.fusion: expected one of ['concat', 'weighted', 'gated', 'attention', "
     "'cross_attention', 'transformer', 'low_rank'] (did you mean 'gated'?). Received: 'gate'"),
    ("fusion: concat", "fusion: gated\n  fusion_options: {hiden_dim: 32}",
     "model.fusion_options.hiden_dim: unknown key (did you mean 'hidden_dim'?); GatedFusion takes: hidden_dim"),
    ("fusion: concat", "fusion: concat\n  fusion_options: {hidden_dim: 32.5}",
     "model.fusion_options.hidden_dim: expected an integer. Received: 32.5"),
    ("fusion: concat", "fusion: concat\n  fusion_options: {dropout: lots}",
     "model.fusion_options.dropout: expected a finite number. Received: 'lots'"),
    ("fusion: concat", "fusion: concat\n  fusion_options: [hidden_dim]",
     "model.fusion_options: expected a mapping. Received: ['hidden_dim']"),
    ('serving_version: "2.20"', "serving_version: 2.20",  # YAML reads 2.20 as the number 2.2
     "export.serving_version: expected a string. Received: 2.2"),
    ("litert: int8", "litert: int4", "export.litert: expected one of ['none', 'float16', 'int8']. Received: 'int4'"),
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


def test_fusion_options_follow_the_fusion_chosen_by_an_override():
    app = load_app(INSPECTION)
    app = with_overrides(app, ["model.fusion=gated", "model.fusion_options={hidden_dim: 16}"])
    assert (app.model.fusion, app.model.fusion_options) == ("gated", {"hidden_dim": 16})
    # Another fusion with the same options: the options no longer fit it.
    with pytest.raises(ValueError, match=re.escape(
            f"{INSPECTION} (with model.fusion=transformer): model.fusion_options.hidden_dim: unknown key; "
            "MultimodalTransformerFusion takes: num_layers, num_heads, intermediate_dim, dropout")):
        with_overrides(app, ["model.fusion=transformer"])


@keras.saving.register_keras_serializable(package="mmkeras_tests")
class MeanFusion(FusionLayer):
    """A user's own fusion: the mean of the present modalities' embeddings, then a Dense layer."""

    def __init__(self, modality_names, hidden_dim=8, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.hidden_dim = int(hidden_dim)
        self.dense = keras.layers.Dense(self.hidden_dim, name="dense")

    def build(self, embeddings_shape, presence_shape=None):
        self.dense.build((None, embeddings_shape[2]))

    def modality_weights(self, embeddings, presence, tokens=None, token_masks=None):
        return masked_softmax(keras.ops.zeros_like(presence), presence)

    def call(self, embeddings, presence, tokens=None, token_masks=None):
        return self.dense(weighted_sum(self.modality_weights(embeddings, presence), embeddings))

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}


def test_a_fusion_registered_from_user_code_is_accepted_by_app_yaml(monkeypatch, tmp_path):
    sensor = {"kind": "sensor", "features": ["x"], "mean": [0.0], "variance": [1.0]}
    contents = {"data": {"label_column": "y", "labels": ["no", "yes"]},
                "inputs": [{**sensor, "name": "a"}, {**sensor, "name": "b"}],
                "model": {"fusion": "mean", "fusion_options": {"hidden_dim": 4}}}
    with pytest.raises(ValueError, match=re.escape("app.yaml: model.fusion: expected one of ['concat', ")):
        App.from_config(contents)

    monkeypatch.setitem(fusion.FUSIONS, "mean", MeanFusion)  # registered after mmkeras was imported
    app = App.from_config(contents)
    model = build_app_model(app, app.specs(), types.SimpleNamespace(columns=None))
    assert type(model.get_layer("fusion")) is MeanFusion and model.get_layer("fusion").hidden_dim == 4
    inputs = {"a": np.array([[1.0], [np.nan]], "float32"), "b": np.array([[2.0], [3.0]], "float32")}
    assert model.predict(inputs, verbose=0).shape == (2, 2)
    # The report reads its weights through the one method: 1/2 each, then b alone.
    assert evaluation.fusion_weights(model, inputs) == pytest.approx({"a": 0.25, "b": 0.75})
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert evaluation.fusion_weights(reloaded, inputs) == pytest.approx({"a": 0.25, "b": 0.75})

    # Its options are checked against its constructor, as a built-in fusion's are.
    contents["model"]["fusion_options"] = {"hiden_dim": 4}
    with pytest.raises(ValueError, match=re.escape(
            "app.yaml: model.fusion_options.hiden_dim: unknown key (did you mean 'hidden_dim'?); "
            "MeanFusion takes: hidden_dim")):
        App.from_config(contents)


def test_clipnorm_and_auxiliary_loss_weight_reach_compile_model(tmp_path, monkeypatch):
    received = {}
    monkeypatch.setattr(training, "compile_model", lambda model, **options: received.update(options))
    app = load_app(edited_app(tmp_path, "  class_weights: true",
                              "  class_weights: true\n  clipnorm: 0.5\n  auxiliary_loss_weight: 0.1"))
    compile_app_model(None, app, total_steps=10)
    assert (received["clipnorm"], received["auxiliary_loss_weight"]) == (0.5, 0.1)
    compile_app_model(None, with_overrides(app, ["training.clipnorm=null"]), total_steps=10)
    assert received["clipnorm"] is None


def readme_rows(header):
    """The rows of README.md's table with `header`, as lists of cells."""
    text = open(os.path.join(HERE, "README.md")).read()
    table = text[text.index(header):]
    table = table[:table.index("\n\n")].splitlines()[2:]
    return [[cell.strip("` ") for cell in row.strip("|").split(" | ")] for row in table]


def readme_table():
    """`{key: default cell}` of README.md's "App configuration" table."""
    return {key: default for key, default, *_ in readme_rows("| key | default | meaning |")}


def test_the_readme_input_kinds_table_lists_every_key_of_every_kind_with_its_default():
    rows = readme_rows("| kind | key | default | meaning |")
    table = {(kind, key): default for kind, key, default, _ in rows}
    expected = {}
    for kind, spec_class in mmk.MODALITIES.items():
        for name, parameter in inspect.signature(spec_class.__init__).parameters.items():
            if name not in ("self", "name"):
                expected[(kind, name)] = parameter.default
    assert sorted(table) == sorted(expected)
    for key, default in expected.items():
        if default is inspect.Parameter.empty:
            assert table[key] == "required", key
        else:
            written = yaml.safe_load(table[key])
            assert (list(default) if isinstance(default, tuple) else default) == written, key


def test_the_readme_table_lists_every_key_with_its_default():
    table = readme_table()
    table.pop("inputs[i]")  # modality specs: each spec's own arguments
    fields = {f"{section}.{field.name}": field
              for section, cls in app_config.SECTIONS.items() for field in dataclasses.fields(cls)}
    assert sorted(table) == sorted(fields)
    for key, field in fields.items():
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            assert table[key] == "required", key
        else:
            default = field.default_factory() if field.default is dataclasses.MISSING else field.default
            assert yaml.safe_load(table[key].strip("`")) == default, key
