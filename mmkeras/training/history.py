"""What a training run did, read back from its run folder.

`callbacks()` logs every epoch to `history.csv` and the best epoch to
`checkpoints/best.json`; the report turns them into learning curves and a
verdict: stopped early, ran every epoch, or still improving when it ended.
"""

import csv
import json
import math
import os

from mmkeras.training.callbacks import BEST_RECORD, HISTORY_FILE


def training_summary(out_dir, epochs, patience):
    """The epochs, best epoch, how the run ended and its curves.

    Args:
        out_dir: the run folder given to `fit` / `callbacks`.
        epochs: the epochs asked for.
        patience: the early-stopping patience (None: no early stopping).

    Returns:
        `{"epochs_planned", "epochs_run", "best_epoch" (1-based), "monitor",
        "best_value", "patience", "stopped_early", "still_improving",
        "curves": {logged name: [value per epoch]}}`; None when the folder
        has no log.

    Example:
    >>> training_summary("runs/sentiment/fused", epochs=40, patience=8)["best_epoch"]  # doctest: +SKIP
    17
    """
    log_path = os.path.join(out_dir, HISTORY_FILE)
    if not os.path.exists(log_path):
        return None
    with open(log_path, newline="") as f:
        # A resumed epoch is logged again: the later row is the one that counts.
        rows = {int(row["epoch"]): row for row in csv.DictReader(f)}
    rows = [rows[epoch] for epoch in sorted(rows)]
    curves = {name: [_number(row[name]) for row in rows] for name in (rows[0] if rows else {}) if name != "epoch"}
    best = {}
    if os.path.exists(os.path.join(out_dir, BEST_RECORD)):
        with open(os.path.join(out_dir, BEST_RECORD)) as f:
            best = json.load(f)
    epochs_run = len(rows)
    stopped_early = patience is not None and epochs_run < epochs
    return {"epochs_planned": epochs, "epochs_run": epochs_run, "best_epoch": best.get("epoch"),
            "monitor": best.get("monitor"), "best_value": best.get("value"), "patience": patience,
            "stopped_early": stopped_early,
            "still_improving": not stopped_early and best.get("epoch") == epochs_run,
            "curves": curves}


def _number(text):
    try:
        value = float(text)
    except ValueError:  # a metric Keras logged as text (rare): left out of the curve
        return None
    return value if math.isfinite(value) else None
