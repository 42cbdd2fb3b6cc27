"""`evaluate`'s results as TensorBoard scalars and a confusion-matrix image."""

import tensorflow as tf

from mmkeras.evaluation.plots import confusion_matrix_figure, png_bytes

_SCALAR_METRICS = ("accuracy", "macro_f1", "roc_auc_macro", "pr_auc_macro", "ece", "miss_rate",
                   "false_alarm_rate", "subset_accuracy")


def png_to_image_batch(png):
    """PNG bytes as the `[1, height, width, 4]` batch that `tf.summary.image` takes."""
    return tf.image.decode_png(png, channels=4)[None]


def write_tensorboard(results, log_dir, step=0):
    """Writes the headline scalars, ablation, robustness, baselines and the confusion matrix."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for name in _SCALAR_METRICS:
            if results["metrics"].get(name) is not None:
                tf.summary.scalar(f"evaluation/{name}", results["metrics"][name], step=step)
        for name, value in (results["ablation"] or {}).get("importance", {}).items():
            if value is not None:
                tf.summary.scalar(f"ablation_importance/{name}", value, step=step)
        for r in (results["robustness"] or {}).get("results", []):
            if r["value"] is not None:
                tf.summary.scalar(f"robustness/p={r['p']:.2f}", r["value"], step=step)
        for name, b in (results["baselines"] or {}).get("baselines", {}).items():
            if b["value"] is not None:
                tf.summary.scalar(f"baselines/{name}", b["value"], step=step)
        if not results["multi_label"]:
            figure = confusion_matrix_figure(results["metrics"]["confusion_matrix"], results["labels"])
            tf.summary.image("evaluation/confusion_matrix", png_to_image_batch(png_bytes(figure)), step=step)
    writer.flush()
    writer.close()
