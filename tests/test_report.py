"""What the report tells a reader: intervals, training, plain notes and plots."""

import numpy as np
import pytest

from mmkeras import training
from mmkeras.evaluation.bootstrap import bootstrap_scores, percentile_interval
from mmkeras.evaluation.headline_metric import headline_metric
from mmkeras.evaluation.metrics import classification_metrics, headline_value
from mmkeras.evaluation.plots import _reliability_figure, _robustness_figure, learning_curves_figure
from mmkeras.evaluation.report import comparison_rows, format_results_table
from mmkeras.headlines import headlines

LABELS = ["ok", "dent", "scratch", "crack"]


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_the_quick_headline_is_the_reports_headline(multi_label, seed):
    """The bootstrap's `headline_metric` and `classification_metrics` (scikit-learn's definitions)
    agree on every headline, including data where a class never occurs (seed 1) and tied scores."""
    rng = np.random.default_rng(seed)
    if multi_label:
        y = (rng.random((40, 4)) < 0.3).astype(np.int64)
        y[:, 3] = 0 if seed == 1 else y[:, 3]
        y_prob = np.clip(y * 0.4 + rng.random((40, 4)) * 0.6, 0, 1)
    else:
        y = rng.integers(0, 3 if seed == 1 else 4, 40)
        y_prob = rng.dirichlet(np.ones(4), 40)
    if seed >= 2:  # tied scores, as a model with few distinct outputs gives
        y_prob = np.round(y_prob, 1)
    normal = None if multi_label else "ok"
    metrics = classification_metrics(y, y_prob, LABELS, multi_label, normal, threshold=0.4)
    for metric in headlines(multi_label):
        quick = headline_metric(y, y_prob, metric, LABELS, multi_label, normal, threshold=0.4)
        assert quick == pytest.approx(headline_value(metrics, metric)), metric


def _accuracy(y_true, y_prob):
    return float(np.mean(y_prob.argmax(1) == y_true))


def _right_with_probability(y, p, rng):
    right = rng.random(len(y)) < p
    guess = np.where(right, y, 1 - y)
    return np.eye(2)[guess] * 0.8 + 0.1


def test_the_headline_interval_has_the_width_sampling_gives():
    """400 examples right with probability 0.8: the 95% interval is about +-1.96 sqrt(0.8 * 0.2 / 400)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    y_prob = _right_with_probability(y, 0.8, rng)
    low, high = percentile_interval(bootstrap_scores(y, {"model": (y_prob, _accuracy)})["model"])
    assert low < _accuracy(y, y_prob) < high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.8 * 0.2 / 400), rel=0.2)


def test_a_paired_difference_is_narrower_than_the_two_intervals():
    """Two models that agree on most examples: the difference's interval is far narrower than
    what the two headline intervals side by side suggest, and holds 0 when they are equal."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    first = _right_with_probability(y, 0.8, rng)
    second = first.copy()
    second[:6] = second[:6, ::-1]  # 6 of 300 answers flipped
    samples = bootstrap_scores(y, {"a": (first, _accuracy), "b": (second, _accuracy)})
    a, b = percentile_interval(samples["a"]), percentile_interval(samples["b"])
    difference = percentile_interval(samples["a"] - samples["b"])
    assert difference[1] - difference[0] < 0.5 * (a[1] - a[0])
    assert percentile_interval(samples["a"] - samples["a"]) == [0.0, 0.0]
    assert b[0] < a[1]


def test_an_interval_of_a_mostly_undefined_score_is_none():
    assert percentile_interval([np.nan] * 6 + [0.5] * 4) is None


def _fit(tmp_path, epochs, patience, learning_rate):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    inputs = keras.Input((3,), name="sensor")
    model = keras.Model({"sensor": inputs}, keras.layers.Dense(2, activation="softmax", name="label")(inputs))
    training.compile_model(model, learning_rate=learning_rate)
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(({"sensor": x}, y)).batch(16)
    training.fit(model, data, data, epochs=epochs, out_dir=tmp_path, patience=patience, verbose=0,
                 tensorboard=False)
    return training.training_summary(tmp_path, epochs, patience)


def test_the_training_summary_says_how_the_run_ended(tmp_path):
    # A learning rate of 0: nothing improves after epoch 1, so early stopping fires.
    stopped = _fit(tmp_path / "flat", epochs=10, patience=2, learning_rate=0.0)
    assert stopped["stopped_early"] and stopped["epochs_run"] == 3 and stopped["best_epoch"] == 1
    assert not stopped["still_improving"] and len(stopped["curves"]["val_loss"]) == 3
    # A run in the same folder starts a new log.
    again = _fit(tmp_path / "flat", epochs=2, patience=None, learning_rate=0.0)
    assert again["epochs_run"] == 2 and not again["stopped_early"]
    # Learning fast on separable data, the last of 3 epochs is the best by loss-free accuracy or ties.
    learning = _fit(tmp_path / "learning", epochs=3, patience=5, learning_rate=0.1)
    assert learning["epochs_run"] == 3 and learning["monitor"] == "val_accuracy"
    assert learning["curves"]["val_accuracy"][-1] >= learning["curves"]["val_accuracy"][0]
    assert training.training_summary(tmp_path / "none", 3, 5) is None


def _results(baselines=True):
    base = {"metric": "accuracy", "model": 0.9, "baselines": {
        "photo only": {"input": "photo", "value": 0.7, "model_minus_baseline": 0.2,
                       "difference_interval": [0.12, 0.28], "metrics": {}},
        "note only": {"input": "note", "value": 0.88, "model_minus_baseline": 0.02,
                      "difference_interval": [-0.03, 0.07], "metrics": {}}}}
    return {"headline": {"metric": "accuracy", "value": 0.9, "higher_is_better": True, "interval": [0.85, 0.94]},
            "modalities": ["photo", "note"], "baselines": base if baselines else None, "ceilings": None,
            "bootstrap": {"resamples": 1000, "level": 0.95, "seed": 0}}


def test_differences_come_with_their_interval_and_a_plain_verdict():
    header, rows = comparison_rows(_results())
    assert header == ["model", "inputs", "accuracy", "model - baseline", "interval", "verdict"]
    assert rows[1][3:] == ["+0.200", "+0.120 to +0.280", "model better"]
    assert rows[2][3:] == ["+0.020", "-0.030 to +0.070", "no clear difference"]


def test_without_baselines_there_are_no_baseline_columns():
    header, rows = comparison_rows(_results(baselines=False))
    assert header == ["model", "inputs", "accuracy"] and rows == [["model (all modalities)", "photo, note", "0.900"]]
    assert "model - baseline" not in format_results_table(_results(baselines=False))


def test_the_robustness_axis_starts_at_0_and_the_reliability_legend_names_what_is_drawn():
    robustness = {"metric": "accuracy", "results": [{"p": 0.0, "value": 0.95}, {"p": 0.5, "value": 0.93}]}
    assert _robustness_figure(robustness).axes[0].get_ylim()[0] == 0
    bins = [{"lower": i / 4, "upper": (i + 1) / 4, "count": c, "confidence": None if not c else i / 4 + 0.1,
             "accuracy": None if not c else 0.5} for i, c in enumerate([0, 3, 0, 5])]
    axes = _reliability_figure({"bins": bins, "num_bins": 4, "ece": 0.1, "kind": "top-label confidence"}).axes[0]
    assert {text.get_text() for text in axes.get_legend().get_texts()} == {
        "observed frequency in the bin", "perfect calibration", "observed frequency at the bin's mean confidence"}
    assert len(axes.patches) == 2  # a bar per bin that holds examples, none for empty bins


def test_learning_curves_draw_training_and_validation_of_every_model():
    summary = {"monitor": "val_accuracy", "curves": {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7],
                                                     "accuracy": [0.6, 0.8], "val_accuracy": [0.5, 0.7]}}
    figure = learning_curves_figure({"model": summary, "photo only": summary})
    loss_axes, metric_axes = figure.axes
    assert len(loss_axes.lines) == 4 and len(metric_axes.lines) == 4
    assert [t.get_text() for t in loss_axes.get_legend().get_texts()] == ["model", "photo only"]
