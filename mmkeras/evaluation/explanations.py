"""Why the model decided, on the test examples.

Each modality's contribution to an example is what the export's `explain`
signature serves (`mmkeras/explain.py`): the predicted class's probability
with every input minus without that input. The modality ablation has already
run the model without each input, so the report gets the contributions of
every test example at no extra cost: their means per modality and per
predicted class, and those of the most confident mistakes and right answers.
"""

import numpy as np

from mmkeras.evaluation.robustness import is_missing
from mmkeras.explain import contributions

EXAMPLES_SHOWN = 4  # of each: the most confident mistakes, the most confident right answers


def explanations(y_true, y_prob, without, inputs, labels, multi_label, count=EXAMPLES_SHOWN, shown=None):
    """Contributions of the test examples, summarised.

    Args:
        y_true: class ids `[N]`, or multi-hot `[N, C]`.
        y_prob: `[N, C]` probabilities with every input.
        without: `{modality: [N, C] probabilities with it missing in every example}`.
        inputs: the examples' inputs (where the data lacks a modality, it contributes 0).
        labels: class names.
        multi_label: whether `y_true` is multi-hot (the predicted class is the top label).
        count: examples shown of each kind.
        shown: the positions of the examples to show instead (`mmkeras explain --rows`).

    Returns:
        `{"modalities", "mean": {modality: mean}, "mean_by_predicted_class": {class: {modality:
        mean}}, "examples": [{"index", "true", "predicted", "confidence", "correct",
        "contributions": {modality: value}}]}`.

    Example:
    >>> y_prob = np.array([[0.9, 0.1], [0.3, 0.7]])
    >>> out = explanations(np.array([0, 0]), y_prob, {"note": np.array([[0.5, 0.5], [0.5, 0.5]])},
    ...                    {"note": np.array(["bad", "good"], object)}, ["bad", "good"], False)
    >>> out["mean"]["note"], [e["correct"] for e in out["examples"]]
    (0.3, [False, True])
    """
    names = list(without)
    values = contributions(y_prob, without, {name: is_missing(inputs, name) for name in names})
    predicted = y_prob.argmax(axis=1)
    rows = np.arange(len(predicted))
    correct = y_true[rows, predicted] == 1 if multi_label else predicted == y_true
    confidence = y_prob[rows, predicted]
    if shown is None:
        most_confident = np.argsort(-confidence, kind="stable")
        shown = ([i for i in most_confident if not correct[i]][:count]
                 + [i for i in most_confident if correct[i]][:count])
    return {
        "modalities": names,
        "mean": dict(zip(names, values.mean(axis=0).tolist())),
        "mean_by_predicted_class": {labels[c]: dict(zip(names, values[predicted == c].mean(axis=0).tolist()))
                                    for c in range(len(labels)) if np.any(predicted == c)},
        "examples": [{"index": int(i), "true": _truth(y_true[i], labels, multi_label),
                      "predicted": labels[predicted[i]], "confidence": float(confidence[i]),
                      "correct": bool(correct[i]), "contributions": dict(zip(names, values[i].tolist()))}
                     for i in shown],
    }


def _truth(target, labels, multi_label):
    if multi_label:
        return "|".join(label for label, on in zip(labels, target) if on) or "(none)"
    return labels[int(target)]
