"""The report's figures: confusion matrix, reliability diagram, ROC curves, bars."""

import io
import os

import numpy as np

from mmkeras.evaluation.metrics import has_both_classes, roc_auc, roc_curve


def _figure(width=6.0, height=4.5):
    # A bare Figure (no pyplot): no global backend state, renders with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(figure):
    """A figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_figure(matrix, labels, title="Confusion matrix"):
    """A matplotlib Figure of a confusion matrix, coloured by row-normalised recall.

    Example:
    >>> confusion_matrix_figure([[3, 1], [0, 4]], ["ok", "dent"]).axes[0].get_title()
    'Confusion matrix'
    """
    matrix = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    figure = _figure(size, size * 0.85)
    axes = figure.add_subplot()
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="fraction of true class")
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center",
                          color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    return figure


def _reliability_figure(calib):
    figure = _figure(5, 5)
    axes = figure.add_subplot()
    bins = [b for b in calib["bins"] if b["count"]]
    width = 1.0 / calib["num_bins"]
    axes.bar([b["lower"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
             edgecolor="black", alpha=0.7, label="observed frequency in the bin")
    axes.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    axes.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C1",
              label="observed frequency at the bin's mean confidence")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"predicted probability ({calib['kind']})",
             ylabel="observed frequency", title=f"Reliability diagram (ECE {calib['ece']:.3f})")
    axes.legend(loc="upper left", fontsize=8)
    return figure


def _roc_figure(y_true, y_prob, labels, multi_label):
    figure = _figure(6, 5)
    axes = figure.add_subplot()
    for k, label in enumerate(labels[:20]):
        truth = y_true[:, k] if multi_label else (y_true == k).astype(np.int64)
        if not has_both_classes(truth):
            continue
        fpr, tpr, _ = roc_curve(truth, y_prob[:, k])
        axes.plot(fpr, tpr, label=f"{label} (AUC {roc_auc(truth, y_prob[:, k]):.3f})")
    axes.plot([0, 1], [0, 1], "k:", linewidth=1)
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
             title="ROC curves" + ("" if multi_label else " (one-vs-rest)"))
    axes.legend(loc="lower right", fontsize=8)
    return figure


def _bar_figure(values, title, ylabel, highlight_first=False):
    figure = _figure(max(5.0, 1.2 * len(values) + 2), 4)
    axes = figure.add_subplot()
    names = list(values)
    heights = [values[n] if values[n] is not None else 0.0 for n in names]
    colors = ["C1" if highlight_first and i == 0 else "C0" for i in range(len(names))]
    bars = axes.bar(names, heights, color=colors)
    axes.bar_label(bars, fmt="%.3f", fontsize=8)
    axes.axhline(0, color="k", linewidth=0.5)
    axes.set(title=title, ylabel=ylabel)
    axes.tick_params(axis="x", labelrotation=20)
    return figure


def _robustness_figure(robustness):
    figure = _figure(5, 4)
    axes = figure.add_subplot()
    points = [(r["p"], r["value"]) for r in robustness["results"] if r["value"] is not None]
    axes.plot([p for p, _ in points], [v for _, v in points], "o-")
    # From 0: a drop from 0.95 to 0.93 should look like what it is.
    axes.set(xlabel="drop probability per modality", ylabel=robustness["metric"],
             title="Missing-modality robustness", ylim=(0, max(1.0, *(v for _, v in points))))
    return figure


def learning_curves_figure(training):
    """Loss and the monitored metric per epoch, training (solid) and
    validation (dashed), one colour per model.

    Example:
    >>> summary = {"monitor": "val_accuracy", "curves": {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7],
    ...            "accuracy": [0.6, 0.8], "val_accuracy": [0.5, 0.7]}}
    >>> [axes.get_title() for axes in learning_curves_figure({"model": summary}).axes]
    ['loss', 'accuracy']
    """
    figure = _figure(10, 4)
    loss_axes, metric_axes = figure.subplots(1, 2)
    metric_name = None
    for k, (name, summary) in enumerate(training.items()):
        curves, monitor = summary["curves"], summary["monitor"] or "val_loss"
        style = dict(color=f"C{k}", linewidth=2.0 if k == 0 else 1.0)
        for axes, logged in ((loss_axes, "val_loss"), (metric_axes, monitor)):
            trained = logged.removeprefix("val_")
            for key, dashes in ((trained, "-"), (logged, "--")):
                values = curves.get(key)
                if values:
                    axes.plot(range(1, len(values) + 1), values, dashes, label=name if dashes == "-" else None,
                              **style)
        metric_name = metric_name or monitor.removeprefix("val_")
    loss_axes.set(title="loss", xlabel="epoch")
    metric_axes.set(title=metric_name, xlabel="epoch")
    loss_axes.legend(fontsize=8)
    return figure


def contributions_figure(examples, modalities):
    """One bar chart per example: each modality's contribution to its prediction.

    Example:
    >>> example = {"index": 3, "true": "ok", "predicted": "dent", "confidence": 0.9, "correct": False,
    ...            "contributions": {"photo": 0.4, "note": -0.1}}
    >>> contributions_figure([example], ["photo", "note"]).axes[0].get_title()
    '#3: dent (0.90), true ok'
    """
    columns = min(4, len(examples))
    rows = -(-len(examples) // columns)
    figure = _figure(3.2 * columns, 0.5 * len(modalities) * rows + 1.2 * rows)
    grid = figure.subplots(rows, columns, squeeze=False, sharex=True)
    limit = max(0.05, *(abs(v) for e in examples for v in e["contributions"].values()))
    for axes, example in zip(grid.flat, examples):
        values = [example["contributions"][name] for name in modalities]
        axes.barh(modalities, values, color=["C2" if v >= 0 else "C3" for v in values])
        axes.axvline(0, color="k", linewidth=0.5)
        axes.set_xlim(-limit * 1.1, limit * 1.1)
        axes.invert_yaxis()
        axes.set_title(f"#{example['index']}: {example['predicted']} ({example['confidence']:.2f}), "
                       f"true {example['true']}", fontsize=8, color="black" if example["correct"] else "C3")
        axes.tick_params(labelsize=7)
    for axes in list(grid.flat)[len(examples):]:
        axes.set_visible(False)
    return figure


def _colour(score, limit):
    from matplotlib import colormaps

    return colormaps["coolwarm"](0.5 + 0.5 * np.clip(score / limit, -1, 1))


def _draw_image(axes, value, attribution, limit):
    cells = attribution["parts"]
    grid = np.zeros((max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1))
    for (r, c), score in zip(cells, attribution["scores"]):
        grid[r, c] = score
    height, width = value.shape[:2]
    axes.imshow(np.clip(value / 255.0, 0, 1))
    axes.imshow(grid, cmap="coolwarm", vmin=-limit, vmax=limit, alpha=0.45, extent=(0, width, height, 0),
                interpolation="nearest")
    axes.set_axis_off()


def _draw_words(axes, value, attribution, limit, per_line=36):
    # Monospace words on coloured boxes, wrapped by characters: the highlighted text.
    x, y = 0, 0
    for word, score in zip(attribution["parts"], attribution["scores"]):
        if x and x + len(word) > per_line:
            x, y = 0, y + 1
        axes.text(x / per_line, 1 - 0.09 * (y + 1), word, family="monospace", fontsize=8,
                  bbox=dict(facecolor=_colour(score, limit), edgecolor="none", pad=1))
        x += len(word) + 1
    axes.set_axis_off()


def _draw_time(axes, value, attribution, limit, num_mels=40):
    # The clip as the audio encoder sees it, a log-mel picture (25 ms windows, 10 ms
    # hops), under the scores of its time spans.
    from mmkeras.log_mel import LogMelSpectrogram

    seconds = attribution["parts"][-1][1]
    rate = int(round(len(value) / seconds))
    picture = LogMelSpectrogram(sample_rate=rate, fft_size=1 << (rate // 40 - 1).bit_length(),
                                window_size=rate // 40, hop_size=rate // 100,
                                num_mels=num_mels)(np.nan_to_num(value, nan=0.0)[None].astype("float32"))
    axes.imshow(np.asarray(picture[0]).T, origin="lower", aspect="auto", cmap="gray",
                extent=(0, seconds, 0, num_mels))
    for (start, end), score in zip(attribution["parts"], attribution["scores"]):
        axes.axvspan(start, end, color=_colour(score, limit), alpha=0.45, linewidth=0)
    axes.set(xlabel="seconds", ylabel="mel band")


def _draw_features(axes, value, attribution, limit):
    scores = attribution["scores"]
    axes.barh(attribution["parts"], scores, color=[_colour(s, limit) for s in scores])
    axes.axvline(0, color="k", linewidth=0.5)
    axes.invert_yaxis()
    axes.tick_params(labelsize=7)


_DRAW = {"image": _draw_image, "words": _draw_words, "time": _draw_time, "features": _draw_features}


def example_figure(example, values):
    """One example: its modality contributions, then each input's part scores
    drawn on the input (red: hiding the part lowers the predicted class's
    probability; blue: raises it).

    Args:
        example: an entry of `explanations(...)["examples"]`, with `attributions`.
        values: `{modality: the example's decoded value}`.
    """
    attributions = example.get("attributions") or {}
    figure = _figure(3.3 * (1 + len(attributions)), 3.0)
    panels = figure.subplots(1, 1 + len(attributions), squeeze=False)[0]
    names = list(example["contributions"])
    contributions = [example["contributions"][n] for n in names]
    panels[0].barh(names, contributions, color=["C2" if v >= 0 else "C3" for v in contributions])
    panels[0].axvline(0, color="k", linewidth=0.5)
    panels[0].invert_yaxis()
    panels[0].set_title("modality contributions", fontsize=8)
    panels[0].tick_params(labelsize=7)
    for axes, (name, attribution) in zip(panels[1:], attributions.items()):
        limit = max(1e-3, *np.abs(attribution["scores"]))
        _DRAW[attribution["layout"]](axes, values[name], attribution, limit)
        axes.set_title(f"{name} (max {limit:.3f})", fontsize=8)
    figure.suptitle(f"#{example['index']}: {example['predicted']} ({example['confidence']:.2f}), "
                    f"true {example['true']}", fontsize=9, color="black" if example["correct"] else "C3")
    return figure


def write_plots(results, y_true, y_prob, out_dir, inputs=None):
    """Writes the PNGs of `evaluate`'s results into `out_dir`; returns {plot name: file name}.
    `inputs` (the decoded examples) lets each shown example's parts be drawn on it."""
    labels, multi_label = results["labels"], results["multi_label"]
    metrics, metric = results["metrics"], results["headline"]["metric"]
    figures = {}
    if not multi_label:
        figures["confusion_matrix"] = confusion_matrix_figure(metrics["confusion_matrix"], labels)
    figures["reliability_diagram"] = _reliability_figure(metrics["calibration"])
    if any(has_both_classes(y_true[:, k] if multi_label else (y_true == k)) for k in range(len(labels))):
        figures["roc_curves"] = _roc_figure(y_true, y_prob, labels, multi_label)
    if results["ablation"]:
        figures["modality_ablation"] = _bar_figure(
            results["ablation"]["importance"], "Modality ablation", f"{metric} lost without modality"
        )
    if results["robustness"] and len(results["robustness"]["results"]) > 1:
        figures["robustness"] = _robustness_figure(results["robustness"])
    explained = results.get("explanations")
    if explained and explained["examples"]:
        figures["contributions"] = contributions_figure(explained["examples"], explained["modalities"])
        for example in explained["examples"] if inputs is not None else []:
            values = {name: value[example["index"]] for name, value in inputs.items()}
            figures[f"example_{example['index']}"] = example_figure(example, values)
    training = {name: summary for name, summary in (results.get("training") or {}).items() if summary}
    if training:
        figures["learning_curves"] = learning_curves_figure(training)
    if results["baselines"]:
        values = {"model": results["baselines"]["model"]}
        values.update({n: b["value"] for n, b in results["baselines"]["baselines"].items()})
        figures["baselines"] = _bar_figure(values, "Model vs unimodal baselines", metric, highlight_first=True)
    files = {}
    for name, figure in figures.items():
        files[name] = f"{name}.png"
        figure.savefig(os.path.join(out_dir, files[name]))
    return files
