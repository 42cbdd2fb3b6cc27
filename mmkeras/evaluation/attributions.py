"""Which part of each input a prediction rests on, for the examples a report shows.

Occlusion (Zeiler and Fergus, 2014), one method for every kind: each kind
cuts its decoded value into parts and hides one at a time
(`Modality.occlusions`: image grid cells painted in the image's mean colour,
words removed, time windows silenced, features made missing); a part's score
is how much the predicted class's probability falls when it is hidden.
Model-agnostic and in the model's own terms, like the modality contributions:
it needs only predictions, so it works for every encoder and fusion. A
category is one value: its modality contribution is its attribution.

Cost: one batch of K copies per input and example (36 image cells, up to 60
words, 16 audio windows, F features).
"""

import numpy as np

from mmkeras.evaluation.robustness import is_missing


def occlusion_attributions(predict_fn, inputs, index, specs, target):
    """Scores of the parts of every input of example `index`.

    Args:
        predict_fn: `inputs dict -> probabilities [N, C]`.
        inputs: decoded inputs of the examples, `{name: array [N, ...]}`.
        index: which example.
        specs: the model's specs (each kind cuts its input into parts).
        target: the class whose probability is scored (the predicted one).

    Returns:
        `{modality: {"layout", "parts", "scores"}}` for the inputs the example
        holds and whose kind has parts; a score is the fall in probability when
        that part is hidden (negative: hiding it raises the probability).

    Example:
    >>> predict = lambda x: np.stack([1 - x["s"][:, 0] / 10, x["s"][:, 0] / 10], axis=1)
    >>> import mmkeras as mmk
    >>> spec = mmk.SensorInput("s", features=["a", "b"], mean=[0, 0], variance=[1, 1])
    >>> out = occlusion_attributions(lambda x: np.nan_to_num(predict(x)), {"s": np.array([[4.0, 1.0]])}, 0,
    ...                              [spec], target=1)
    >>> out["s"]["parts"], [round(s, 2) for s in out["s"]["scores"]]
    (['a', 'b'], [0.4, 0.0])
    """
    example = {name: value[index:index + 1] for name, value in inputs.items()}
    full = float(np.asarray(predict_fn(example))[0, target])
    attributions = {}
    for spec in specs:
        if is_missing(example, spec.name)[0]:
            continue
        occlusions = spec.occlusions(inputs[spec.name][index])
        if occlusions is None:
            continue
        count = len(occlusions.copies)
        batch = {name: np.repeat(value, count, axis=0) for name, value in example.items()}
        batch[spec.name] = occlusions.copies
        scores = full - np.asarray(predict_fn(batch))[:, target]
        attributions[spec.name] = {"layout": occlusions.layout, "parts": list(occlusions.parts),
                                   "scores": scores.tolist()}
    return attributions
