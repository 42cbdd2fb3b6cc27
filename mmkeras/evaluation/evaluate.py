"""`evaluate`: one call from a model and a labelled dataset to metrics, analyses and a report."""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

from mmkeras.evaluation.attributions import occlusion_attributions
from mmkeras.evaluation.explanations import explanations
from mmkeras.evaluation.headline_metric import headline_score
from mmkeras.evaluation.bootstrap import LEVEL, RESAMPLES, bootstrap_scores, percentile_interval
from mmkeras.evaluation.metrics import (
    LOWER_IS_BETTER,
    class_ids,
    classification_metrics,
    default_headline,
    headline_value,
)
from mmkeras.evaluation.plots import write_plots
from mmkeras.evaluation.predict import as_predict_fn, head_output, model_input_names, model_predict_fn
from mmkeras.tasks import decision_threshold, task_of
from mmkeras.evaluation.report import fractions_of_ceiling, json_clean, write_report
from mmkeras.evaluation.robustness import (
    DEFAULT_ROBUSTNESS_PROBABILITIES,
    ablated_probabilities,
    ablation,
    fusion_weights,
    robustness,
)
from mmkeras.evaluation.tensorboard import write_tensorboard


def _progbar(target, verbose, unit_name):
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    return keras.utils.Progbar(target, verbose=verbose, unit_name=unit_name)


def collect(dataset, multi_label, max_examples=None, verbose=0):
    """Reads a batched dataset of (inputs, y[, weights]) into NumPy arrays."""
    cardinality = int(dataset.cardinality())
    bar = _progbar(cardinality if cardinality > 0 else None, verbose, "batch")
    columns, targets, count = {}, [], 0
    for step, element in enumerate(dataset):
        if not isinstance(element, (tuple, list)) or len(element) < 2 or not isinstance(element[0], dict):
            raise ValueError("Expected a dataset of (inputs_dict, y) pairs, inputs keyed by modality name. "
                             f"Received an element of type {type(element).__name__}.")
        x, y = element[0], np.asarray(head_output(element[1]))
        expected_rank = 2 if multi_label else 1
        if y.ndim not in (expected_rank, 2):
            raise ValueError(
                f"Expected a batched dataset with y of shape "
                f"{'[batch, num_labels] (multi-hot)' if multi_label else '[batch] (class ids)'}. "
                f"Received y of shape {y.shape} in batch {step}; call dataset.batch(n) first?"
            )
        for name, value in x.items():
            columns.setdefault(name, []).append(value.numpy())
        targets.append(y)
        count += len(y)
        bar.update(step + 1)
        if max_examples is not None and count >= max_examples:
            break
    if not targets:
        raise ValueError("The evaluation dataset is empty.")
    inputs = {name: np.concatenate(parts)[:max_examples] for name, parts in columns.items()}
    y_true = np.concatenate(targets)[:max_examples]
    return inputs, y_true if multi_label else class_ids(y_true)


def _task_settings(model, labels, multi_label):
    """Labels and multi-label from the arguments, else from the model's task;
    both given must agree with the task, so a report never mislabels classes."""
    task = task_of(model)
    if task is None:
        if labels is None:
            raise ValueError("evaluate needs `labels=` for a model without a task "
                             "(a MultimodalClassifier carries its own).")
        return list(labels), bool(multi_label)
    if labels is not None and list(labels) != task.labels:
        raise ValueError(f"labels={list(labels)} differ from the model's own {task.labels}.")
    if multi_label is not None and bool(multi_label) != task.multi_label:
        raise ValueError(f"multi_label={multi_label} differs from the model's task "
                         f"(multi_label={task.multi_label}).")
    return task.labels, task.multi_label


def _unimodal_prob(model, inputs, input_name, batch_size):
    if input_name not in inputs:
        raise ValueError(f"Baseline input {input_name!r} is not in the data. Received keys: {list(inputs)}")
    if isinstance(model, keras.Model) and not isinstance(model.input, dict):
        # A single-input model that is not keyed by name takes the bare array.
        dataset = tf.data.Dataset.from_tensor_slices(inputs[input_name]).batch(batch_size)
        return np.asarray(head_output(model.predict(dataset, verbose=0)), dtype=np.float64)
    return as_predict_fn(model, batch_size)({input_name: inputs[input_name]})


def _intervals(y_true, scored, metric, seed):
    """Bootstrap intervals of the headline, of model - baseline and of each
    ablation importance, all on the same resamples. `scored`: `{"model" |
    ("baseline", name) | ("without", modality): (y_prob, score)}`."""
    samples = bootstrap_scores(y_true, scored, seed=seed)
    model = samples["model"]
    # Importance is how much worse without the input: lower-is-better metrics flip the sign.
    worse = (lambda reduced: reduced - model) if metric in LOWER_IS_BETTER else (lambda reduced: model - reduced)
    return {"model": percentile_interval(model),
            "difference": {key[1]: percentile_interval(model - samples[key]) for key in samples
                           if key[0] == "baseline"},
            "importance": {key[1]: percentile_interval(worse(samples[key])) for key in samples
                           if key[0] == "without"}}


def explained_with_attributions(model, predict_fn, inputs, y_true, y_prob, without, labels, multi_label,
                                shown=None):
    """`explanations`, with each shown example's `attributions` where the
    model's specs say how to cut its inputs into parts."""
    explained = explanations(y_true, y_prob, without, inputs, labels, multi_label, shown=shown)
    specs = getattr(model, "specs", None)
    for example in explained["examples"] if specs else []:
        example["attributions"] = occlusion_attributions(predict_fn, inputs, example["index"], specs,
                                                         target=labels.index(example["predicted"]))
    return explained


def evaluate(model, dataset, *, labels=None, multi_label=None, normal_label=None, baselines=None,
             ceilings=None, out_dir=None, tensorboard_dir=None, headline=None,
             robustness_probabilities=DEFAULT_ROBUSTNESS_PROBABILITIES, seed=0, batch_size=32,
             max_examples=None, training=None, run=None, verbose="auto"):
    """Evaluates a multimodal classifier and writes a report.

    Runs `model` on `dataset`, then computes `classification_metrics`, the
    modality ablation, missing-modality robustness, fusion weights and the
    comparison with unimodal `baselines` on the headline metric, each with a
    95% bootstrap interval (`bootstrap.py`; differences paired). The examples
    are held in memory (the ablation re-runs the model on them), so cap large
    sets with `max_examples`.

    Args:
        model: functional Keras model with dict inputs keyed by modality name.
        dataset: batched `tf.data.Dataset` of `(inputs_dict, y)`; y is class ids
            `[B]` (or one-hot), multi-hot `[B, C]` when `multi_label`.
        labels: class names, in the order of the model's output columns;
            default: the model's own (`model.task.labels`), which a model
            built elsewhere lacks.
        multi_label: whether the head is multi-label (sigmoid); default: the
            model's task says, else False.
        normal_label: single-label inspection tasks: the normal class (e.g. "ok").
        baselines: `{name: (unimodal_model, input_name)}`; each model takes only
            its own input.
        ceilings: `{"model" | baseline name: {metric: best possible value}}`,
            e.g. from `mmkeras.data.ceiling`; the report shows each score
            beside its ceiling and the fraction of it reached.
        out_dir: where to write `metrics.json`, `report.md`, `report.html` and PNGs.
        tensorboard_dir: where to write scalars and the confusion-matrix image.
        headline: scalar of `classification_metrics` to compare on (default
            accuracy, or roc_auc_macro for multi-label).
        robustness_probabilities: drop probabilities for the robustness sweep.
        seed: seed of the robustness masks.
        batch_size: prediction batch size.
        max_examples: evaluate at most this many examples.
        training: `{"model" | baseline name: training.training_summary(...)}`:
            the report shows learning curves, epochs and best epochs.
        run: `{"app", "data", "split": {"train", "validation", "test", "method", "note"},
            "seed"}` or part of it: what the report says was run on what.
        verbose: "auto" (progress bar on a terminal), 0 or 1.

    Returns:
        A JSON-clean dict: `headline` (with its `interval`), `metrics`,
        `ablation` (with `importance_interval`), `robustness`,
        `fusion_weights`, `explanations` (each modality's contribution to the
        predictions: means, and the most confident mistakes and right answers),
        `baselines` (each with `difference_interval`),
        `bootstrap`, `training`, `run`, `notes` (and `files` when `out_dir`).

    Example:
    >>> results = evaluate(model, val_ds, out_dir="runs/eval")  # doctest: +SKIP
    >>> print(format_results_table(results))  # doctest: +SKIP
    """
    labels, multi_label = _task_settings(model, labels, multi_label)
    metric = headline or default_headline(multi_label)
    baselines = dict(baselines or {})
    all_inputs, y_true = collect(dataset, multi_label, max_examples, verbose)
    for name, baseline in baselines.items():
        if not (isinstance(baseline, (tuple, list)) and len(baseline) == 2):
            raise ValueError(f"Expected baselines[{name!r}] = (unimodal_model, input_name). Received: {baseline!r}")
    # Only the model's own inputs are modalities; other fields (ids, ...) stay out of the ablation.
    names = model_input_names(model) or list(all_inputs)
    missing = [n for n in names if n not in all_inputs]
    if missing:
        raise ValueError(f"The model takes inputs {names}; the dataset lacks {missing}. "
                         f"Received keys: {list(all_inputs)}")
    inputs = {n: all_inputs[n] for n in names}
    modalities = list(inputs)
    notes = []
    if 0.0 not in robustness_probabilities:
        robustness_probabilities = (0.0, *robustness_probabilities)
    num_passes = 1 + len(modalities) + len([p for p in robustness_probabilities if p > 0]) + len(baselines)
    bar = _progbar(num_passes, verbose, "pass")
    passes_done = [0]

    def advance():
        passes_done[0] += 1
        bar.update(min(passes_done[0], num_passes))

    predict_fn = model_predict_fn(model, batch_size)
    y_prob = predict_fn(inputs)
    advance()
    threshold = decision_threshold(model)
    metrics = classification_metrics(y_true, y_prob, labels, multi_label, normal_label, threshold)
    value = headline_value(metrics, metric)
    y_true = np.asarray(y_true).astype(np.int64)
    score = headline_score(metric, labels, multi_label, normal_label, threshold)

    def scorer(probabilities):
        return score(y_true, probabilities)

    without = ablated_probabilities(predict_fn, inputs, on_pass=advance)
    ablated = ablation(y_prob, without, scorer, metric)
    robust = robustness(predict_fn, inputs, y_prob, scorer, metric, robustness_probabilities, seed,
                        on_pass=advance)
    weights = fusion_weights(model, inputs, batch_size)
    if weights is None:
        notes.append("This model's fusion gives no weight per input (it combines them without weighing "
                     "them), so the report has no fusion-weight table; the modality ablation shows what "
                     "each input is worth.")

    scored = {"model": (y_prob, score), **{("without", n): (p, score) for n, p in without.items()}}
    comparison = None
    if baselines:
        comparison = {"metric": metric, "model": value, "baselines": {}}
        for name, (baseline_model, input_name) in baselines.items():
            prob = _unimodal_prob(baseline_model, all_inputs, input_name, batch_size)
            baseline_threshold = decision_threshold(baseline_model)
            baseline_metrics = classification_metrics(y_true, prob, labels, multi_label, normal_label,
                                                      baseline_threshold)
            scored[("baseline", name)] = (prob, headline_score(metric, labels, multi_label, normal_label,
                                                                baseline_threshold))
            baseline_value = headline_value(baseline_metrics, metric)
            advance()
            comparison["baselines"][name] = {
                "input": input_name,
                "value": baseline_value,
                "model_minus_baseline": None if None in (value, baseline_value) else value - baseline_value,
                "metrics": baseline_metrics,
            }

    intervals = _intervals(y_true, scored, metric, seed)
    ablated["importance_interval"] = intervals["importance"]
    for name, interval in intervals["difference"].items():
        comparison["baselines"][name]["difference_interval"] = interval
    results = {
        "num_examples": int(len(y_true)),
        "labels": labels,
        "modalities": modalities,
        "multi_label": bool(multi_label),
        "normal_label": normal_label,
        "headline": {"metric": metric, "value": value, "higher_is_better": metric not in LOWER_IS_BETTER,
                     "interval": intervals["model"]},
        "metrics": metrics,
        "ablation": ablated,
        "robustness": robust,
        "fusion_weights": weights,
        "explanations": explained_with_attributions(model, predict_fn, inputs, y_true, y_prob, without, labels,
                                                    multi_label),
        "baselines": comparison,
        "ceilings": fractions_of_ceiling(ceilings, metric, value, comparison),
        "bootstrap": {"resamples": RESAMPLES, "level": LEVEL, "seed": seed},
        "training": training,
        "run": run,
        "notes": notes + robust.pop("notes"),
    }
    results = json_clean(results)
    if passes_done[0] < num_passes:  # robustness skips passes where nothing was dropped
        bar.update(num_passes)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        plots = write_plots(results, y_true, np.clip(y_prob, 0, 1), out_dir, inputs)
        results["files"] = {"metrics": "metrics.json", "report_md": "report.md",
                            "report_html": "report.html", "plots": plots}
        write_report(results, out_dir)
    if tensorboard_dir:
        write_tensorboard(results, tensorboard_dir)
    return results
