"""Tests of mmkeras.evaluation: metrics, ablation, robustness, reports, TensorBoard."""

import glob
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras import evaluation
from mmkeras.fusion import FusionLayer
from mmkeras.fusion.masking import weighted_sum
from mmkeras.evaluation import (
    ConfusionMatrixCallback,
    average_precision,
    calibration,
    classification_metrics,
    model_predict_fn,
    evaluate,
    format_results_table,
    fusion_weights,
    mark_missing,
    missing_modality_robustness,
    modality_ablation,
    roc_auc,
    sensitivity_at_specificity,
)

LABELS = ["neg", "pos"]


# === Toy layers and models ===
# The toy model's prediction depends only on readings[:, 0] (its sign is the
# class); the review reaches the head through a zero weight.


@keras.saving.register_keras_serializable(package="mmkeras_tests")
class NanToZero(keras.layers.Layer):
    """Makes a float input robust to missing values, as mmkeras models are."""

    def call(self, inputs):
        return keras.ops.where(keras.ops.isnan(inputs), keras.ops.zeros_like(inputs), inputs)


@keras.saving.register_keras_serializable(package="mmkeras_tests")
class StringLength(keras.layers.Layer):
    """Length of each string as a float feature [B, 1] ("" gives 0)."""

    def call(self, inputs):
        return tf.cast(tf.strings.length(tf.reshape(inputs, [-1])), "float32")[:, None]

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], 1), dtype="float32")


@keras.saving.register_keras_serializable(package="mmkeras_tests")
class FixedWeightFusion(FusionLayer):
    """Weighted sum with constant softmax weights, which `modality_weights` gives."""

    def __init__(self, modality_names, logits, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.logits = list(logits)

    def modality_weights(self, embeddings, presence, tokens=None, token_masks=None):
        weights = keras.ops.softmax(keras.ops.convert_to_tensor(self.logits, "float32"))
        return keras.ops.broadcast_to(weights[None], keras.ops.shape(presence))

    def call(self, embeddings, presence, tokens=None, token_masks=None):
        return weighted_sum(self.modality_weights(embeddings, presence), embeddings)

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None):
        return keras.KerasTensor((embeddings.shape[0], embeddings.shape[2]))

    def get_config(self):
        return {**super().get_config(), "logits": self.logits}


def _dense(units, kernel):
    return keras.layers.Dense(units, kernel_initializer=keras.initializers.Constant(kernel))


def toy_model(robust=True, with_fusion=False, multi_label=False):
    review = keras.Input(shape=(), dtype="string", name="review")
    readings = keras.Input(shape=(2,), name="readings")
    text_feature = StringLength()(review)
    sensor = NanToZero()(readings) if robust else readings
    first_reading = _dense(1, [[1.0], [0.0]])(sensor)
    features = [first_reading, text_feature]
    kernel = [[-10.0, 10.0], [0.0, 0.0]]
    if with_fusion:
        fusion = FixedWeightFusion(["review", "readings"], [0.0, math.log(3.0)], name="fusion")
        stacked = keras.layers.Concatenate(axis=1)([keras.layers.Reshape((1, 1))(feature)
                                                    for feature in (text_feature, first_reading)])
        presence = keras.layers.Rescaling(0.0, offset=1.0)(keras.layers.Concatenate()(features))  # ones
        fused = fusion(stacked, presence)
        features.append(fused)
        kernel.append([0.0, 0.0])
    logits = _dense(2, kernel)(keras.layers.Concatenate()(features))
    head = keras.layers.Activation("sigmoid" if multi_label else "softmax", name="label")(logits)
    return keras.Model({"review": review, "readings": readings}, head)


def readings_only_model():
    readings = keras.Input(shape=(2,), name="readings")
    logits = _dense(2, [[-10.0, 10.0], [0.0, 0.0]])(NanToZero()(readings))
    return keras.Model({"readings": readings}, keras.layers.Activation("softmax", name="label")(logits))


def review_only_model():
    review = keras.Input(shape=(), dtype="string", name="review")
    logits = _dense(2, [[0.01, -0.01]])(StringLength()(review))
    return keras.Model({"review": review}, keras.layers.Activation("softmax", name="label")(logits))


def toy_data(num_examples=48, seed=0):
    """Balanced classes; class 1 iff readings[:, 0] > 0; reviews are never empty."""
    rng = np.random.default_rng(seed)
    y = np.arange(num_examples) % 2
    magnitude = rng.uniform(0.2, 1.0, num_examples)
    readings = np.stack([np.where(y == 1, magnitude, -magnitude), rng.normal(size=num_examples)], 1)
    words = np.array([b"good", b"bad", b"fine product", b"meh"], dtype=object)
    inputs = {"review": rng.choice(words, num_examples), "readings": readings.astype("float32")}
    return inputs, y


def toy_dataset(inputs, y, batch_size=16):
    return tf.data.Dataset.from_tensor_slices((inputs, y)).batch(batch_size)


# === Ranking metrics and calibration ===


def test_roc_auc_and_average_precision_hand_computed():
    y, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, scores) == pytest.approx(0.75)
    # Recall 0.5 at precision 1, recall 1 at precision 2/3.
    assert average_precision(y, scores) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc([1, 1], [0.2, 0.9]) is None


def test_sensitivity_at_90_specificity():
    negatives = np.arange(10) / 10  # 0.0 ... 0.9
    positives = np.array([0.85, 0.95, 0.5, 0.3])
    y = np.r_[np.zeros(10), np.ones(4)]
    scores = np.r_[negatives, positives]
    # At most one false positive (0.9) is allowed: threshold 0.85 catches 2 of 4.
    assert sensitivity_at_specificity(y, scores, 0.9) == pytest.approx(0.5)
    assert sensitivity_at_specificity(y, scores, 0.5) == pytest.approx(0.75)


def test_ece_perfectly_calibrated_and_overconfident():
    calibrated = calibration(np.full(10, 0.8), np.r_[np.ones(8), np.zeros(2)])
    assert calibrated["ece"] == pytest.approx(0.0)
    overconfident = calibration(np.full(10, 1.0), np.r_[np.ones(5), np.zeros(5)])
    assert overconfident["ece"] == pytest.approx(0.5)
    assert overconfident["num_bins"] == 15 and len(overconfident["bins"]) == 15
    assert sum(b["count"] for b in overconfident["bins"]) == 10
    assert overconfident["bins"][-1]["accuracy"] == pytest.approx(0.5)


# === classification_metrics ===


def test_single_label_metrics_hand_computed():
    y_true = [0, 0, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 2, 0]
    y_prob = np.full((6, 3), 0.1)
    y_prob[np.arange(6), predicted] = 0.8
    m = classification_metrics(y_true, y_prob, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "roc_auc": m["per_class"]["a"]["roc_auc"],
         "pr_auc": m["per_class"]["a"]["pr_auc"]}
    )
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["c"]["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # Class "b": its two positives score 0.8; of the negatives, one scores 0.8 (tie), three 0.1.
    assert m["per_class"]["b"]["roc_auc"] == pytest.approx((3 + 0.5) / 4)
    # Every confidence is 0.8 and accuracy is 4/6.
    assert m["ece"] == pytest.approx(abs(0.8 - 4 / 6))
    json.dumps(m, allow_nan=False)


def test_absent_class_is_skipped_with_a_note():
    y_prob = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    m = classification_metrics([0, 1, 0, 1], y_prob, ["a", "b", "c"])
    assert m["per_class"]["c"]["roc_auc"] is None
    assert m["roc_auc_macro"] == pytest.approx(1.0)
    assert any("'c'" in note for note in m["notes"])
    # "c" is neither true nor predicted, so it does not drag macro-F1 down.
    assert m["macro_f1"] == pytest.approx(1.0)


def test_inspection_miss_rate():
    labels = ["ok", "scratch", "dent"]
    y_true = [0, 0, 0, 1, 1, 2, 2]
    predicted = [0, 0, 1, 1, 0, 2, 2]  # one defect missed, one false alarm
    y_prob = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    m = classification_metrics(y_true, y_prob, labels, normal_label="ok")
    assert m["miss_rate"] == pytest.approx(1 / 4)
    assert m["false_alarm_rate"] == pytest.approx(1 / 3)
    assert m["inspection"]["recall_per_class"] == pytest.approx({"ok": 2 / 3, "scratch": 0.5, "dent": 1.0})
    with pytest.raises(ValueError, match="normal_label"):
        classification_metrics(y_true, y_prob, labels, normal_label="fine")


def test_multi_label_metrics_hand_computed():
    scores = np.r_[np.arange(10) / 10, [0.85, 0.95, 0.5, 0.3]]
    first = np.r_[np.zeros(10), np.ones(4)]
    second = (np.arange(14) % 2).astype(float)
    y_true = np.stack([first, second], 1)
    y_prob = np.stack([scores, 0.2 + 0.6 * second], 1)
    m = classification_metrics(y_true, y_prob, ["crack", "rust"], multi_label=True)
    crack = m["per_label"]["crack"]
    # Pairs (positive, negative) ranked correctly: 9 + 10 + 5.5 + 3.5 of 40.
    assert crack["roc_auc"] == pytest.approx(28 / 40)
    assert crack["sensitivity_at_specificity"] == pytest.approx(0.5)
    # At 0.5: 3 true positives, 5 false positives, 1 false negative.
    assert crack["f1"] == pytest.approx(6 / 12)
    assert m["per_label"]["rust"]["roc_auc"] == pytest.approx(1.0)
    assert m["roc_auc_macro"] == pytest.approx((0.7 + 1.0) / 2)
    with pytest.raises(ValueError, match="single-label"):
        classification_metrics(y_true, y_prob, ["crack", "rust"], multi_label=True, normal_label="crack")


@pytest.mark.parametrize(
    "y_true, y_prob, match",
    [
        ([0, 1], np.full((2, 3), 1 / 3), r"y_prob.*\[num_examples, 2\]"),
        ([0, 1, 1], np.full((2, 2), 0.5), r"y_true.*\[2\]"),
        ([0, 1], np.array([[0.5, 0.5], [np.nan, 0.5]]), "NaN.*row 1"),
        ([0, 1], np.array([[2.0, -1.0], [0.5, 0.5]]), "logits"),
        ([0, 5], np.full((2, 2), 0.5), r"\[0, 2\).*row 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(y_true, y_prob, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_prob, LABELS)


# === Missing modalities ===


def test_mark_missing_float_and_string():
    inputs = {"review": np.array([b"a", b"b"], dtype=object), "readings": np.ones((2, 2), "float32")}
    out = mark_missing(mark_missing(inputs, "review", [False, True]), "readings", [True, False])
    assert out["review"].tolist() == [b"a", b""]
    assert np.isnan(out["readings"][0]).all() and not np.isnan(out["readings"][1]).any()
    assert inputs["readings"].sum() == 4  # the original is untouched


def test_ablation_finds_the_modality_the_model_uses():
    inputs, y = toy_data()
    out = modality_ablation(toy_model(), inputs, y, labels=LABELS)
    assert out["full"] == pytest.approx(1.0)
    # Without readings every example scores [0.5, 0.5] -> "neg": half right.
    assert out["missing"]["readings"] == pytest.approx(0.5)
    assert out["importance"]["readings"] == pytest.approx(0.5)
    assert out["importance"]["review"] == pytest.approx(0.0)


def test_ablation_names_the_modality_when_the_model_returns_nan():
    inputs, y = toy_data(16)
    with pytest.raises(ValueError, match="'readings' missing"):
        modality_ablation(toy_model(robust=False), inputs, y, labels=LABELS)


def test_robustness_degrades_and_never_drops_every_modality():
    inputs, y = toy_data()
    predict = evaluation.model_predict_fn(toy_model())
    seen = []

    def recording_predict(x):
        present = (x["review"] != b"") | ~np.isnan(x["readings"]).all(axis=1)
        seen.append(present)
        return predict(x)

    out = missing_modality_robustness(recording_predict, inputs, y, labels=LABELS,
                                      probabilities=(0.0, 0.5, 0.9), seed=1)
    values = [r["value"] for r in out["results"]]
    assert values[0] == pytest.approx(1.0)
    assert values[1] < 1.0 and values[2] < 1.0
    assert all(present.all() for present in seen)
    assert 0.2 < out["results"][1]["fraction_missing"] <= 0.5
    again = missing_modality_robustness(predict, inputs, y, labels=LABELS, probabilities=(0.0, 0.5, 0.9), seed=1)
    assert [r["value"] for r in again["results"]] == values


def test_fusion_weights_reads_the_fusion_layer():
    inputs, _ = toy_data(8)
    weights = fusion_weights(toy_model(with_fusion=True), inputs)
    assert list(weights) == ["review", "readings"]
    assert weights["review"] == pytest.approx(0.25, abs=1e-6)
    assert weights["readings"] == pytest.approx(0.75, abs=1e-6)
    assert fusion_weights(toy_model(), inputs) is None


# === evaluate and reports ===


def _summary_tags(log_dir):
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_evaluate_writes_report_and_compares_baselines(tmp_path):
    inputs, y = toy_data()
    out_dir, tb_dir = tmp_path / "eval", tmp_path / "tb"
    results = evaluate(
        toy_model(with_fusion=True),
        toy_dataset(inputs, y),
        labels=LABELS,
        baselines={"readings only": (readings_only_model(), "readings"),
                   "review only": (review_only_model(), "review")},
        out_dir=str(out_dir),
        tensorboard_dir=str(tb_dir),
        verbose=0,
    )
    assert results["headline"] == {"metric": "accuracy", "value": 1.0, "higher_is_better": True,
                                   "interval": [1.0, 1.0]}
    assert results["ablation"]["importance"]["readings"] == pytest.approx(0.5)
    # Bootstrap intervals, paired on the same resamples: review only is clearly worse, readings only
    # equal on every resample; without the readings the model falls to chance.
    low, high = results["ablation"]["importance_interval"]["readings"]
    assert 0.3 < low < 0.5 < high < 0.7
    assert results["baselines"]["baselines"]["readings only"]["difference_interval"] == [0.0, 0.0]
    assert results["baselines"]["baselines"]["review only"]["difference_interval"][0] > 0.2
    assert results["fusion_weights"]["readings"] == pytest.approx(0.75, abs=1e-6)
    # The model decides by the readings: they carry the predictions, the review adds little.
    explained = results["explanations"]
    assert explained["mean"]["readings"] > 0.2 > abs(explained["mean"]["review"])
    assert [e["correct"] for e in explained["examples"]] == [True] * 4  # no mistakes to show
    compared = results["baselines"]["baselines"]
    assert compared["readings only"]["value"] == pytest.approx(1.0)
    assert compared["review only"]["model_minus_baseline"] > 0.3
    # Each baseline has every metric the model has, not only the headline.
    for entry in compared.values():
        assert set(entry["metrics"]) == set(results["metrics"])
        assert entry["metrics"]["accuracy"] == pytest.approx(entry["value"])

    names = {"metrics.json", "report.md", "report.html", "confusion_matrix.png", "reliability_diagram.png",
             "roc_curves.png", "modality_ablation.png", "baselines.png", "robustness.png", "contributions.png"}
    assert names <= set(os.listdir(out_dir))
    saved = json.loads((out_dir / "metrics.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert saved["metrics"]["confusion_matrix"] == [[24, 0], [0, 24]]
    report = (out_dir / "report.md").read_text()
    for text in ("readings only", "review only", "Modality ablation", "Fusion weights", "baselines.png",
                 "| metric | model | readings only | review only |", "Per-class metrics: review only",
                 "model better", "no clear difference", "the model needs it", "Why the model decided"):
        assert text in report
    page = (out_dir / "report.html").read_text()
    assert "review only" in page and page.count("data:image/png;base64,") >= 5
    assert {"evaluation/accuracy", "ablation_importance/readings", "baselines/review only",
            "evaluation/confusion_matrix"} <= _summary_tags(str(tb_dir))

    table = format_results_table(results)
    assert "accuracy" in table and "review only" in table and "readings only" in table
    assert len(table.splitlines()) == 5


def test_evaluate_scores_multi_label_at_the_heads_threshold(tmp_path):
    """The report's per-label F1 is at the threshold the head (and the export) uses, not 0.5."""
    inputs, y = toy_data(32)
    multi_hot = np.stack([1 - y, y], 1)
    toy = toy_model(multi_label=True)
    specs = [mmk.TextInput("review", vocabulary=["[PAD]"]),
             mmk.SensorInput("readings", features=["a", "b"], mean=[0, 0], variance=[1, 1])]
    task = mmk.Classification(["down", "up"], multi_label=True, threshold=0.9999)
    model = mmk.MultimodalClassifier(toy.input, toy.output, specs=specs, task=task)
    # Labels, multi-label and threshold come from the model's task.
    results = evaluate(model, toy_dataset(inputs, multi_hot), verbose=0)
    y_prob = model_predict_fn(model, 32)(inputs)
    assert results["metrics"]["threshold"] == 0.9999
    expected = classification_metrics(multi_hot, y_prob, ["down", "up"], multi_label=True, threshold=0.9999)
    assert results["metrics"]["per_label"] == expected["per_label"]
    assert expected["per_label"] != classification_metrics(
        multi_hot, y_prob, ["down", "up"], multi_label=True)["per_label"]


def test_evaluate_multi_label(tmp_path):
    inputs, y = toy_data(32)
    multi_hot = np.stack([1 - y, y], 1)  # column 1 rises with readings[:, 0]
    results = evaluate(toy_model(multi_label=True), toy_dataset(inputs, multi_hot), labels=["down", "up"],
                       multi_label=True, out_dir=str(tmp_path), verbose=0)
    assert results["headline"]["metric"] == "roc_auc_macro"
    assert results["headline"]["value"] == pytest.approx(1.0)
    # Without readings every score is 0.5: the ranking is lost.
    assert results["ablation"]["importance"]["readings"] == pytest.approx(0.5)
    assert (tmp_path / "roc_curves.png").exists() and not (tmp_path / "confusion_matrix.png").exists()


def test_evaluate_rejects_unknown_headline_and_unbatched_data():
    inputs, y = toy_data(8)
    with pytest.raises(ValueError, match="Unknown headline metric 'f2'"):
        evaluate(toy_model(), toy_dataset(inputs, y), labels=LABELS, headline="f2", verbose=0)
    unbatched = tf.data.Dataset.from_tensor_slices((inputs, y))
    with pytest.raises(ValueError, match="batched"):
        evaluate(toy_model(), unbatched, labels=LABELS, verbose=0)


def test_confusion_matrix_callback_writes_images(tmp_path):
    inputs, y = toy_data(16)
    dataset = toy_dataset(inputs, y, batch_size=8)
    model = toy_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    callback = ConfusionMatrixCallback(dataset, LABELS, str(tmp_path))
    model.fit(dataset, epochs=2, callbacks=[callback], verbose=0)
    assert "confusion_matrix" in _summary_tags(str(tmp_path / "validation"))
    assert callback._confusion_matrix().tolist() == [[8, 0], [0, 8]]


# === Targets shaped [B, 1] (issue 23, item 1) ===


def test_class_ids_shaped_b_by_1_are_scored_as_ids_not_one_hot(tmp_path):
    inputs, y = toy_data(32)
    flat = evaluate(toy_model(), toy_dataset(inputs, y), labels=LABELS, verbose=0)
    column = evaluate(toy_model(), toy_dataset(inputs, y[:, None]), labels=LABELS, verbose=0)
    assert column["metrics"]["accuracy"] == flat["metrics"]["accuracy"] == 1.0
    assert column["metrics"]["confusion_matrix"] == [[16, 0], [0, 16]]
    assert column["ablation"] == flat["ablation"]
    one_hot = evaluate(toy_model(), toy_dataset(inputs, np.eye(2)[y]), labels=LABELS, verbose=0)
    assert one_hot["metrics"]["confusion_matrix"] == [[16, 0], [0, 16]]


def test_confusion_matrix_callback_reads_b_by_1_class_ids(tmp_path):
    inputs, y = toy_data(16)
    model = toy_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    callback = ConfusionMatrixCallback(toy_dataset(inputs, y[:, None], batch_size=8), LABELS, str(tmp_path))
    callback.set_model(model)
    assert callback._confusion_matrix().tolist() == [[8, 0], [0, 8]]


def test_class_weights_read_b_by_1_class_ids():
    from mmkeras.training import class_weights

    assert class_weights(np.array([[0], [0], [0], [1]]), 2) == class_weights([0, 0, 0, 1], 2)
