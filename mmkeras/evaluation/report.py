"""The written results of `evaluate`: report.md, report.html, metrics.json and a text table.

The report is built once as data (sections of text, tables and images) and
rendered twice by `page.py`, as Markdown and as a self-contained HTML page.
"""

import json
import math
import os

import numpy as np

from mmkeras.evaluation.metrics import LOWER_IS_BETTER
from mmkeras.evaluation.page import write_page

def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}" if math.isfinite(value) else "n/a"
    return str(value)


def _signed(value):
    return "n/a" if value is None else f"{value:+.3f}"


def _interval(interval, signed=False):
    """`"0.880 to 0.940"` of a bootstrap interval, "" when there is none."""
    if not interval:
        return ""
    text = _signed if signed else _fmt
    return f"{text(interval[0])} to {text(interval[1])}"


def _verdict(interval, higher_is_better, better, worse, neither="no clear difference"):
    """Plain words for a difference's interval: which side it lies on, if any."""
    if not interval:
        return ""
    low, high = interval
    if low > 0:
        return better if higher_is_better else worse
    if high < 0:
        return worse if higher_is_better else better
    return neither


_ENDINGS = {
    "stopped_early": "stopped early: no gain in {patience} epochs",
    "still_improving": "still improving at the last epoch: more epochs may help",
    "ran_all": "ran every epoch; the best came before the end",
}


def _ending(summary):
    key = ("stopped_early" if summary["stopped_early"] else
           "still_improving" if summary["still_improving"] else "ran_all")
    return _ENDINGS[key].format(patience=summary["patience"])


_SCALAR_METRICS = ["accuracy", "subset_accuracy", "macro_f1", "roc_auc_macro", "pr_auc_macro",
                   "sensitivity_at_specificity_macro", "ece", "miss_rate", "false_alarm_rate"]


def _baselines(results):
    return (results.get("baselines") or {}).get("baselines") or {}


def _per_class_table(metrics, multi_label):
    """A `("table", header, rows)` block of one model's per-label / per-class metrics."""
    if multi_label:
        header = ["label", "ROC-AUC", "PR-AUC", f"sensitivity @ {metrics['specificity']:.0%} specificity",
                  f"F1 @ {metrics['threshold']}", "support"]
        rows = [[label, _fmt(m["roc_auc"]), _fmt(m["pr_auc"]), _fmt(m["sensitivity_at_specificity"]),
                 _fmt(m["f1"]), _fmt(m["support"])] for label, m in metrics["per_label"].items()]
    else:
        header = ["class", "precision", "recall", "F1", "support", "ROC-AUC", "PR-AUC"]
        rows = [[label, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), _fmt(m["support"]),
                 _fmt(m["roc_auc"]), _fmt(m["pr_auc"])] for label, m in metrics["per_class"].items()]
    return ("table", header, rows)


def _report_sections(results):
    """The report as data: [(title, [block])], block = ("text", str) | ("table", header, rows) | ("image", file)."""
    metrics, headline = results["metrics"], results["headline"]
    plots = results.get("files", {}).get("plots", {})
    metric = headline["metric"]
    sections = []
    if results.get("run"):
        sections.append(("Run", [("text", _run_text(results["run"]))]))
    interval = headline.get("interval")
    summary = [
        ("text", f"{results['num_examples']} test examples; task: "
                 f"{'multi-label' if results['multi_label'] else 'single-label'}; "
                 f"labels: {', '.join(results['labels'])}."),
        ("text", f"Headline metric: {metric} = {_fmt(headline['value'])}"
                 f"{' (lower is better)' if metric in LOWER_IS_BETTER else ''}"
                 + (f"; {_level(results)} interval {_interval(interval)}: the range a new test set of "
                    f"this size would likely give." if interval else ".")),
    ]
    # Every metric of the model and of each unimodal baseline, side by side.
    every_model = {"model": metrics, **{name: b["metrics"] for name, b in _baselines(results).items()}}
    rows = [[n] + [_fmt(m[n]) for m in every_model.values()] for n in _SCALAR_METRICS if n in metrics]
    summary.append(("table", ["metric", *every_model], rows))
    sections.append(("Summary", summary))

    if results.get("training"):
        sections.append(("Training", _training_blocks(results["training"], plots)))

    baselines = results["baselines"]
    if baselines:
        header, rows = comparison_rows(results)
        blocks = [("text", f"model - baseline: the difference on the same test examples, with its "
                           f"{_level(results)} interval; a difference whose interval holds 0 may be "
                           "noise."),
                  ("table", header, rows)]
        if "baselines" in plots:
            blocks.append(("image", plots["baselines"]))
        sections.append(("Model vs unimodal baselines", blocks))

    for name, model_metrics in every_model.items():
        title = "Per-label metrics" if results["multi_label"] else "Per-class metrics"
        sections.append((title if name == "model" else f"{title}: {name}",
                         [_per_class_table(model_metrics, results["multi_label"])]))
    if not results["multi_label"]:
        if "inspection" in metrics:
            inspection = metrics["inspection"]
            sections.append(("Inspection", [
                ("text", f"Normal class: {inspection['normal_label']!r}. Miss rate (defects predicted "
                         f"normal): {_fmt(metrics['miss_rate'])} of {inspection['num_defects']} defects. "
                         f"False alarm rate: {_fmt(metrics['false_alarm_rate'])} of "
                         f"{inspection['num_normal']} normal examples."),
            ]))
        matrix = metrics["confusion_matrix"]
        rows = [[label] + [str(c) for c in row] for label, row in zip(results["labels"], matrix)]
        blocks = [("text", "Rows: true class; columns: predicted class."),
                  ("table", ["true \\ predicted"] + results["labels"], rows)]
        if "confusion_matrix" in plots:
            blocks.append(("image", plots["confusion_matrix"]))
        sections.append(("Confusion matrix", blocks))

    calib = metrics["calibration"]
    blocks = [("text", f"Expected calibration error over {calib['num_bins']} bins "
                       f"({calib['kind']}): {_fmt(calib['ece'])}.")]
    for name in ("reliability_diagram", "roc_curves"):
        if name in plots:
            blocks.append(("image", plots[name]))
    sections.append(("Calibration and ROC", blocks))

    ablation = results["ablation"]
    if ablation:
        intervals = ablation.get("importance_interval") or {}
        rows = [[name, _fmt(ablation["missing"][name]), _signed(ablation["importance"][name]),
                 _interval(intervals.get(name), signed=True),
                 _verdict(intervals.get(name), True, "the model needs it", "better without it",
                          "no clear effect")]
                for name in ablation["missing"]]
        blocks = [("text", f"{metric} with all modalities: {_fmt(ablation['full'])}. Each row marks one "
                           "modality missing in every example; importance is how much worse the "
                           f"model gets without it, with its {_level(results)} interval."),
                  ("table", ["modality", f"{metric} without it", "importance", "interval", "verdict"], rows)]
        if "modality_ablation" in plots:
            blocks.append(("image", plots["modality_ablation"]))
        sections.append(("Modality ablation", blocks))

    robustness = results["robustness"]
    if robustness:
        rows = [[f"{r['p']:.2f}", _fmt(r["fraction_missing"]), _fmt(r["value"])] for r in robustness["results"]]
        # The nominal p is what the plot's x axis shows; the fraction beside it is what the
        # model actually saw, counting inputs the data already lacks.
        in_data = robustness.get("fraction_missing_in_data") or 0.0
        blocks = [("text", "Each example loses each modality independently with probability p "
                           f"(never all the modalities it has; seed {robustness['seed']}). "
                           "Fraction missing: the share of (example, modality) inputs missing after "
                           f"the drop, including the {_fmt(in_data)} missing in the data."),
                  ("table", ["p", "fraction missing", metric], rows)]
        if "robustness" in plots:
            blocks.append(("image", plots["robustness"]))
        sections.append(("Missing-modality robustness", blocks))

    if results.get("explanations"):
        sections.append(("Why the model decided", explanation_blocks(results["explanations"], plots)))

    if results["fusion_weights"]:
        rows = [[name, _fmt(w)] for name, w in results["fusion_weights"].items()]
        sections.append(("Fusion weights", [("text", "Mean weight the fusion layer gives each modality."),
                                            ("table", ["modality", "mean weight"], rows)]))
    notes = metrics["notes"] + results["notes"]
    if notes:
        sections.append(("Notes", [("text", note) for note in notes]))
    return sections


def _level(results):
    bootstrap = results.get("bootstrap") or {"level": 0.95}
    return f"{bootstrap['level']:.0%}"


def _run_text(run):
    """One paragraph: which app, which data, how it was split, which seed."""
    parts = []
    if run.get("app"):
        parts.append(f"App config: {run['app']}.")
    if run.get("data"):
        parts.append(f"Data: {run['data']}.")
    split = run.get("split")
    if split:
        how = {"manifest": "as the manifest's split column says", "stratified": "stratified by class",
               "random": "at random"}.get(split.get("method"), "")
        parts.append(f"Split{' ' + how if how else ''}: {split['train']} train / {split['validation']} "
                     f"validation / {split['test']} test examples"
                     + (f" ({split['note']})." if split.get("note") else "."))
    if run.get("seed") is not None:
        parts.append(f"Seed {run['seed']}.")
    return " ".join(parts)


def _training_blocks(training, plots):
    """A table of each model's epochs and how its training ended, and the learning curves."""
    rows = []
    for name, summary in training.items():
        if summary is None:
            continue
        rows.append([name, f"{summary['epochs_run']} of {summary['epochs_planned']}",
                     _fmt(summary["best_epoch"]), f"{summary['monitor']} {_fmt(summary['best_value'])}",
                     _ending(summary)])
    blocks = [("text", "The weights kept are the best epoch's (by the validation metric shown); the "
                       "curves show training (solid) and validation (dashed) per epoch."),
              ("table", ["model", "epochs run", "best epoch", "best validation", "how it ended"], rows)]
    if "learning_curves" in plots:
        blocks.append(("image", plots["learning_curves"]))
    return blocks


def explanation_blocks(explained, plots):
    """Mean contributions per predicted class, and the examples shown."""
    names = explained["modalities"]
    means = [["every example", *(_signed(explained["mean"][n]) for n in names)]]
    means += [[f"predicted {label}", *(_signed(values[n]) for n in names)]
              for label, values in explained["mean_by_predicted_class"].items()]
    examples = [[f"#{e['index']}", e["true"], e["predicted"], _fmt(e["confidence"]),
                 "right" if e["correct"] else "wrong", *(_signed(e["contributions"][n]) for n in names)]
                for e in explained["examples"]]
    blocks = [("text", "A modality's contribution to an example: the predicted class's probability with "
                       "every input minus without that one (the model's own answer without it, as the "
                       "SavedModel's `explain` signature serves it; 0 where the example lacks the input). "
                       "Mean contributions:"),
              ("table", ["examples", *names], means),
              ("text", "Examples shown:"),
              ("table", ["example", "true", "predicted", "confidence", "", *names], examples)]
    if "contributions" in plots:
        blocks.append(("image", plots["contributions"]))
    shown = [e for e in explained["examples"] if f"example_{e['index']}" in plots]
    if shown:
        blocks.append(("text", "Where in each input: every part (image cell, word, stretch of sound, feature) "
                               "scored by how much hiding it lowers the predicted class's probability "
                               "(red: the prediction rests on it; blue: it argues against)."))
        blocks += [("image", plots[f"example_{e['index']}"]) for e in shown]
    return blocks


def json_clean(value):
    """Converts NumPy values and tuples to plain JSON types; NaN and inf become None.

    Example:
    >>> json_clean({"ece": np.float32(0.5), "range": (1, float("nan"))})
    {'ece': 0.5, 'range': [1, None]}
    """
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_clean(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def fractions_of_ceiling(ceilings, metric, value, comparison):
    """`{"model" | baseline name: {"value": ceiling, "fraction": score / ceiling}}`."""
    if not ceilings:
        return None
    scores = {"model": value, **{n: b["value"] for n, b in ((comparison or {}).get("baselines") or {}).items()}}
    out = {}
    for name, ceiling in ceilings.items():
        best, score = ceiling.get(metric), scores.get(name)
        out[name] = {"value": best, "fraction": None if not best or score is None else score / best}
    return out


def comparison_rows(results):
    """`(header, rows)`: the model and each baseline on the headline metric,
    with the paired difference and its interval where there are baselines,
    and the ceiling the data allows and the fraction reached, when known."""
    metric, value = results["headline"]["metric"], results["headline"]["value"]
    higher_is_better = results["headline"]["higher_is_better"]
    ceilings = results.get("ceilings") or {}
    baselines = _baselines(results)
    header = ["model", "inputs", metric]
    table = [["model (all modalities)", ", ".join(results["modalities"]), _fmt(value)]]
    keys = ["model"]
    if baselines:
        header += ["model - baseline", "interval", "verdict"]
        table[0] += ["", "", ""]
        for name, b in baselines.items():
            interval = b.get("difference_interval")
            table.append([name, b["input"], _fmt(b["value"]), _signed(b["model_minus_baseline"]),
                          _interval(interval, signed=True),
                          _verdict(interval, higher_is_better, "model better", "baseline better")])
            keys.append(name)
    if ceilings:
        header += ["ceiling", "of ceiling"]
        for row, key in zip(table, keys):
            ceiling = ceilings.get(key) or {}
            row += [_fmt(ceiling.get("value")), _fmt(ceiling.get("fraction"))]
    return header, table


def format_results_table(results):
    """A short plain-text table of the headline metric: model vs baselines.

    Args:
        results: the dict returned by `evaluate`.

    Returns:
        str, one row per model.
    """
    header, rows = comparison_rows(results)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def write_report(results, out_dir):
    """Writes report.md, report.html and metrics.json of `evaluate`'s results into `out_dir`.

    The plots named in `results["files"]["plots"]` must be there already: the
    HTML page embeds them.
    """
    write_page("Evaluation report", _report_sections(results), out_dir, "report")
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, allow_nan=False)
