"""An input kind defined and registered here, outside mmkeras, going end to end:
app.yaml -> manifest -> fit -> export -> a served prediction.

The recipe in DEVELOPING.md ("Add an input kind") is this file's `WordCountInput`:
one class (its whole path) and one registry line.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from mmkeras import modalities
from mmkeras.app import load_app, prepare_data, raw_examples, run_app
from mmkeras.modalities import Encoded, Modality, StringRaw
from mmkeras.modalities.missing import TextPresence, TokenMask
from serving_roundtrip import fresh_process_probabilities, predict_decoded


@keras.saving.register_keras_serializable(package="tests")
class WordCount(keras.layers.Layer):
    """Strings `[B]` -> float `[B, 1]`: how many words each holds."""

    def call(self, inputs):
        words = tf.strings.split(tf.reshape(inputs, [-1]))
        return tf.cast(words.row_lengths(), "float32")[:, None]

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], 1), dtype="float32")


class WordCountInput(StringRaw, Modality):
    """A text read only for its length: the toy kind of this test."""

    kind = "word_count"

    def __init__(self, name, hidden_dim=8):
        super().__init__(name)
        self.hidden_dim = int(hidden_dim)

    def keras_input(self):
        return keras.Input(shape=(), dtype="string", name=self.name)

    def encode(self, x):
        counts = WordCount(name=f"{self.name}_count")(x)
        pooled = keras.layers.Dense(self.hidden_dim, activation="relu", name=f"{self.name}_dense")(counts)
        tokens = keras.layers.Reshape((1, self.hidden_dim), name=f"{self.name}_tokens")(pooled)
        presence = TextPresence(name=f"{self.name}_presence")(x)
        return Encoded(pooled, tokens, TokenMask(name=f"{self.name}_token_mask")(tokens), presence)

    def parse_cells(self, cells):
        return str(cells[cells.column] or "").strip()

    def summarize(self, values):
        return {"missing": sum(1 for v in values if not v)}

    def synthetic_raw(self, rng):
        return " ".join(["word"] * int(rng.integers(1, 20)))

    def get_config(self):
        return {"name": self.name, "hidden_dim": self.hidden_dim}


@pytest.fixture
def registered():
    modalities.MODALITIES["word_count"] = WordCountInput  # the one registry line
    yield
    del modalities.MODALITIES["word_count"]


def test_a_kind_registered_outside_mmkeras_goes_end_to_end(registered, tmp_path):
    rng = np.random.default_rng(0)
    lines = ["comment,site,label"]
    for _ in range(160):
        words = int(rng.integers(1, 20))
        lines.append(f"{' '.join(['w'] * words)},site-{rng.integers(3)},{'long' if words > 10 else 'short'}")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    app_file = tmp_path / "app.yaml"
    app_file.write_text(yaml.safe_dump({
        "name": "comments",
        "data": {"manifest": str(tmp_path / "data.csv"), "label_column": "label", "labels": ["short", "long"]},
        "inputs": [{"kind": "word_count", "name": "comment"}, {"kind": "category", "name": "site"}],
        "training": {"epochs": 20, "learning_rate": 0.01},
    }))
    results = run_app(str(app_file), work_dir=tmp_path / "run", export_dir=tmp_path / "models" / "comments",
                      baselines=False, verbose=0)
    assert results["report"]["metrics"]["accuracy"] >= 0.85  # the length is the label
    specs = results["model"].specs
    assert isinstance(specs[0], WordCountInput)
    _, (_, _, test) = prepare_data(load_app(app_file), None, tmp_path / "run")
    examples = raw_examples(test, specs, count=4)
    served = fresh_process_probabilities(results["export_path"], examples, specs, tmp_path)
    np.testing.assert_allclose(served, predict_decoded(results["model"], examples, specs), atol=1e-4)


def test_an_unknown_kind_is_an_error_naming_the_known_kinds(tmp_path):
    app_file = tmp_path / "app.yaml"
    app_file.write_text(yaml.safe_dump({
        "name": "comments", "data": {"label_column": "label", "labels": ["a", "b"]},
        "inputs": [{"kind": "word_count", "name": "comment"}]}))
    with pytest.raises(ValueError, match=r"Unknown modality kind 'word_count'.*Known: \['audio', 'category', "
                                         r"'image', 'sensor', 'text', 'timeseries'\]"):
        load_app(app_file).specs()


def test_a_kind_missing_a_method_names_the_method_and_the_class():
    class Unfinished(Modality):
        kind = "unfinished"

    with pytest.raises(NotImplementedError, match=r"Unfinished \(kind 'unfinished'\) does not define `decode`"):
        Unfinished("x").decode(b"")
