"""What the demo data allows: Bayes-optimal scores from the generators' hidden cues.

Every demo example is drawn from hidden cues (a sentiment per source, the
findings a radiograph shows, a defect signature per sensor), which the
generator records in `cues.csv` beside the manifest. A model that reads a
source perfectly knows its cue and nothing more; the best it can do is
predict from `P(label | cues of the sources it sees)`. That posterior is
estimated by sampling the generator's cue distribution (no files drawn), and
applied to the recorded cues of the test rows, so a model's score can be
read as a fraction of its ceiling.

Example:
>>> import tempfile
>>> from mmkeras.data import demo
>>> folder = tempfile.mkdtemp()
>>> manifest = demo.generate("sentiment", folder, num_examples=200)
>>> scores = ceiling_scores("sentiment", manifest.parent / demo.CUES_NAME, rows=range(1, 201),
...                         sources=["review", "photo", "voice"])
>>> scores["accuracy"]
1.0
"""

import collections
import csv
import functools

import numpy as np
from sklearn import metrics

from mmkeras.data import demo


def ceiling_scores(app, cues_path, rows, sources, num_samples=100_000):
    """Bayes-optimal accuracy, macro-F1 and macro ROC-AUC on `rows` from `sources`' cues.

    Args:
        app: a demo app name.
        cues_path: the generator's `cues.csv`.
        rows: manifest row numbers (1-based) to score, e.g. a test split.
        sources: names from `demo.DEMO_APPS[app].cue_sources` the model reads.
        num_samples: cue draws that estimate the posterior.

    Returns:
        dict of `accuracy` (exact match for multi-label), `macro_f1` and
        `roc_auc_macro` (None where a class has one value only).
    """
    demo_app = demo.DEMO_APPS[app]
    unknown = sorted(set(sources) - set(demo_app.cue_sources))
    if unknown:
        raise ValueError(f"Unknown cue sources {unknown} for app {app!r}; known: {list(demo_app.cue_sources)}")
    recorded = _read_cues(cues_path)
    missing = [row for row in rows if row not in recorded]
    if missing:
        raise ValueError(f"{cues_path} has no cues for manifest rows {missing[:5]}")
    table = _posterior_table(app, tuple(sorted(sources)), num_samples)
    prior = table[None]
    probabilities = np.array([table.get(_key(recorded[row], sources), prior) for row in rows])
    truth = np.array([_one_hot(recorded[row]["label"], demo_app) for row in rows])
    return _scores(truth, probabilities, demo_app.multi_label)


def source_names_of(app, columns):
    """The cue sources whose manifest columns are all among `columns` (what a model sees).

    Example:
    >>> source_names_of("inspection", ["temperature", "vibration_rms", "current"])
    ['readings']
    """
    return [source for source, needed in demo.DEMO_APPS[app].cue_sources.items()
            if set(needed) <= set(columns)]


@functools.lru_cache(maxsize=32)
def _posterior_table(app, sources, num_samples, seed=0):
    """`{cue key: P(label)}` (`[C]`, per-class for multi-label), plus `None`: the prior."""
    labels, draws = _cue_draws(app, num_samples, seed)
    sums = collections.defaultdict(lambda: np.zeros(labels.shape[1]))
    counts = collections.Counter()
    for label, cues in zip(labels, draws):
        key = _key(cues, sources)
        sums[key] += label
        counts[key] += 1
    table = {key: total / counts[key] for key, total in sums.items()}
    table[None] = labels.mean(axis=0)
    return table


@functools.lru_cache(maxsize=4)
def _cue_draws(app, num_samples, seed):
    """One sample of the generator's cue distribution, shared by every set of sources
    (drawing it is most of the cost): labels one-hot `[num_samples, C]` and the cues."""
    demo_app = demo.DEMO_APPS[app]
    sampler = demo.CUE_SAMPLERS[app]
    rng = np.random.default_rng(seed)
    draws = [sampler(rng) for _ in range(num_samples)]
    labels = np.array([_one_hot(label, demo_app) for label, _ in draws])
    return labels, [cues for _, cues in draws]


def _key(cues, sources):
    return tuple(str(cues[source]) for source in sorted(sources))


def _one_hot(label, demo_app):
    names = [n for n in str(label).split("|") if n] if demo_app.multi_label else [str(label)]
    return np.array([float(name in names) for name in demo_app.labels])


def _scores(truth, probabilities, multi_label):
    if multi_label:
        predicted = (probabilities >= 0.5).astype(int)
        accuracy = metrics.accuracy_score(truth.astype(int), predicted)
        f1 = metrics.f1_score(truth.astype(int), predicted, average="macro", zero_division=0)
    else:
        true_class, predicted = truth.argmax(-1), probabilities.argmax(-1)
        accuracy = metrics.accuracy_score(true_class, predicted)
        f1 = metrics.f1_score(true_class, predicted, average="macro", labels=range(truth.shape[1]),
                              zero_division=0)
    has_both = [c for c in range(truth.shape[1]) if 0 < truth[:, c].sum() < len(truth)]
    auc = (float(np.mean([metrics.roc_auc_score(truth[:, c], probabilities[:, c]) for c in has_both]))
           if len(has_both) == truth.shape[1] else None)
    return {"accuracy": float(accuracy), "macro_f1": float(f1), "roc_auc_macro": auc}


def _read_cues(path):
    with open(path, newline="", encoding="utf-8") as file:
        return {int(row["row"]): row for row in csv.DictReader(file)}
