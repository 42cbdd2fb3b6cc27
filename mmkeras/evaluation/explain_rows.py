"""`mmkeras explain`: the report's "Why the model decided" page for chosen rows.

The same figures as the report's shown examples (modality contributions, then
each input's parts drawn on it), for the manifest rows a user names: the
model's prediction for each, what each input added, and where in each input.
"""

import json
import os

import numpy as np

from mmkeras.evaluation.evaluate import collect, explained_with_attributions
from mmkeras.evaluation.plots import example_figure
from mmkeras.evaluation.predict import model_predict_fn
from mmkeras.evaluation.page import write_page
from mmkeras.evaluation.report import explanation_blocks, json_clean
from mmkeras.evaluation.robustness import ablated_probabilities


def explain_rows(model, examples, out_dir, batch_size=32):
    """Writes `explanation.md`, `explanation.html`, `explanation.json` and a PNG
    per row into `out_dir`; returns the explanations.

    Args:
        model: a `MultimodalClassifier` (its specs decode and cut the inputs).
        examples: the rows to explain (`Examples`, e.g. from `App.load_examples`
            and `mmkeras.data.splits.subset`); examples are named by manifest row.
        out_dir: where to write (created).
        batch_size: prediction batch size.

    Example:
    >>> explain_rows(mmk.load_model("runs/sentiment/model.keras"), rows, "runs/sentiment/explain")  # doctest: +SKIP
    """
    from mmkeras.data.pipeline import make_dataset

    task = model.task
    inputs, y_true = collect(make_dataset(examples, model.specs, batch_size=batch_size), task.multi_label)
    predict_fn = model_predict_fn(model, batch_size)
    y_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    without = ablated_probabilities(predict_fn, inputs, on_pass=lambda: None)
    explained = explained_with_attributions(model, predict_fn, inputs, y_true, y_prob, without, task.labels,
                                            task.multi_label, shown=list(range(len(examples))))
    os.makedirs(out_dir, exist_ok=True)
    plots = {}
    for example in explained["examples"]:
        values = {name: value[example["index"]] for name, value in inputs.items()}
        example["index"] = examples.rows[example["index"]]  # named by manifest row from here on
        plots[f"example_{example['index']}"] = f"row_{example['index']}.png"
        example_figure(example, values).savefig(os.path.join(out_dir, plots[f"example_{example['index']}"]))
    explained = json_clean(explained)
    write_page("Why the model decided", [("Rows " + ", ".join(str(r) for r in examples.rows),
                                           explanation_blocks(explained, plots))], out_dir, "explanation")
    with open(os.path.join(out_dir, "explanation.json"), "w", encoding="utf-8") as f:
        json.dump(explained, f, indent=2, allow_nan=False)
    return explained
