"""`mmkeras tune`: a KerasTuner search over an app's settings.

Each trial is the app with the trial's values set (`with_overrides`, so any
key of the model, training, data or evaluation sections can be searched),
trained on the training split as `mmkeras run` trains it, and scored by its
best epoch's validation metric, the one tracking the app's headline. The test
split is not read during the search: once it is over, the best trial's best
checkpoint is evaluated on it, once. KerasTuner keeps the search's state in
`<work_dir>/tuning/keras_tuner/`, so running the same command again after an
interruption continues it (an interrupted trial runs again).

Writes `<work_dir>/tuning/`: `trials.csv` (every trial's values, validation
score, epochs and seconds), `trials.png` (score by trial, best so far),
`best_app.yaml` (the app with the winning values, which `mmkeras run` takes)
and `report/` (the winner on the test split).
"""

import csv
import json
import os
import time

import keras_tuner
import yaml

from mmkeras import app_config
from mmkeras.app import App, build_app_model, load_app, train_app_model, with_overrides
from mmkeras.app_data import prepare_data
from mmkeras.data.pipeline import make_dataset
from mmkeras.data.splits import write_split
from mmkeras.headlines import tracker
from mmkeras.tune_space import DEFAULT_SPACE, Choice, is_integer_range, parse_space

ALGORITHMS = ("bayesian", "hyperband", "random")
_TRIAL_RECORD = "mmkeras_trial.json"


def tune_app(app, *, manifest=None, work_dir=None, trials=10, max_minutes=None, algorithm="bayesian",
             epochs=None, num_examples=None, seed=0, verbose="auto"):
    """Searches the app's `tune:` space (or `tune_space.DEFAULT_SPACE`).

    Args:
        app: an `App` or the path of an app folder / `app.yaml`.
        manifest: data instead of `data.manifest` (None and none set: demo data).
        work_dir: run folder (default `runs/<app>`); the search goes to `tuning/` in it.
        trials: trials at most.
        max_minutes: start no trial after this many minutes.
        algorithm: "bayesian", "hyperband" (its brackets set each trial's
            epochs, up to `epochs`) or "random".
        epochs: each trial's epochs (default `training.epochs`).
        num_examples: demo data size.
        seed: data split, weights and the search's own draws.

    Returns:
        `{"best": {path: value}, "validation": best score, "test": the
        winner's test headline, "best_app": path of best_app.yaml, "trials":
        path of trials.csv}`.

    Example:
    >>> tune_app("apps/sentiment", trials=2, epochs=1, num_examples=200)  # doctest: +SKIP
    """
    app = app if isinstance(app, App) else load_app(app)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"--algorithm: expected one of {list(ALGORITHMS)}. Received: {algorithm!r}")
    work_dir = work_dir or os.path.join("runs", app.name)
    out_dir = os.path.join(work_dir, "tuning")
    sections = {name: getattr(app, name) for name in app_config.SECTIONS}
    space = app.tune or app_config.check_space(parse_space(DEFAULT_SPACE, app.file), sections, app.file)
    epochs = epochs or app.training.epochs
    manifest, split = prepare_data(app, manifest, work_dir, num_examples, seed)
    train, val, test = split
    write_split(work_dir, manifest, seed, train, val, test, how=split.how)  # which rows were held out
    print(f"[{app.name}] tuning {list(space)} with {algorithm}, {trials} trials at most"
          + (f" or {max_minutes} minutes" if max_minutes else "") + f"; writing to {os.path.abspath(out_dir)}")
    direction = "min" if tracker(app.evaluation.headline, app.data.multi_label).logged == "loss" else "max"
    oracle = _oracle(algorithm, keras_tuner.Objective("validation", direction), trials, epochs, seed)
    tuner = AppTuner(app, space, train, val, epochs, seed, verbose, trials,
                      None if max_minutes is None else time.monotonic() + 60 * max_minutes,
                      oracle=oracle, directory=out_dir, project_name="keras_tuner", overwrite=False)
    tuner.search()

    best_trial = tuner.oracle.get_best_trials(1)[0]
    best = {path: best_trial.hyperparameters.values[path] for path in space}
    write_trials(tuner, space, out_dir)
    best_app = write_best_app(app, best, best_trial.score, os.path.join(out_dir, "best_app.yaml"), manifest)
    test_headline = _evaluate_on_test(with_overrides(app, _settings(best)), tuner.get_trial_dir(best_trial.trial_id),
                                      test, os.path.join(out_dir, "report"))
    print(f"[{app.name}] best of {len(tuner.oracle.trials)} trials: {best}; validation {best_trial.score:.3f}, "
          f"test {app.evaluation.headline or 'headline'} {test_headline:.3f}; next: mmkeras run {best_app}")
    return {"best": best, "validation": best_trial.score, "test": test_headline, "best_app": best_app,
            "trials": os.path.join(out_dir, "trials.csv")}


def _oracle(algorithm, objective, trials, epochs, seed):
    if algorithm == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(objective, max_epochs=max(epochs, 2), seed=seed)
        oracle.max_trials = trials  # Hyperband sizes its brackets; the cap is ours
        return oracle
    if algorithm == "random":
        return keras_tuner.oracles.RandomSearchOracle(objective, max_trials=trials, seed=seed)
    return keras_tuner.oracles.BayesianOptimizationOracle(objective, max_trials=trials, seed=seed)


def _settings(values):
    return [f"{path}={json.dumps(value)}" for path, value in values.items()]


def _define(hp, path, entry):
    """The trial's value of one path (KerasTuner registers it on first use)."""
    if isinstance(entry, Choice):
        return hp.Choice(path, entry.values)
    if is_integer_range(entry):
        return hp.Int(path, entry.min, entry.max, step=entry.step or 1)
    return hp.Float(path, float(entry.min), float(entry.max), step=entry.step,
                    sampling="log" if entry.log else "linear")


class AppTuner(keras_tuner.Tuner):
    """Trials are app runs on the training and validation splits (`run_trial`)."""

    def __init__(self, app, space, train, val, epochs, seed, verbose, trials, deadline, **kwargs):
        super().__init__(**kwargs)
        self.app, self.space, self.train, self.val = app, space, train, val
        self.epochs, self.seed, self.verbose = epochs, seed, verbose
        self.trials, self.deadline = trials, deadline

    def pre_create_trial(self):
        out_of_time = self.deadline is not None and time.monotonic() > self.deadline
        if out_of_time or len(self.oracle.trials) >= self.trials:
            self.oracle.max_trials = len(self.oracle.trials)  # the oracle then stops the search

    def run_trial(self, trial, *args, **kwargs):
        return run_trial(self, trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        best = self.oracle.get_best_trials(1)
        print(f"[{self.app.name}] trial {len(self.oracle.trials)} of {self.trials}: "
              f"{'failed' if trial.score is None else f'{trial.score:.3f}'}"
              + (f" (best so far {best[0].score:.3f})" if best else ""))


def run_trial(tuner, trial):
    """Trains the app with the trial's values; returns its best validation score."""
    import keras

    from mmkeras import training

    hp = trial.hyperparameters
    values = {path: _define(hp, path, entry) for path, entry in tuner.space.items()}
    app = with_overrides(tuner.app, _settings(values))
    epochs = hp.values.get("tuner/epochs", tuner.epochs)
    specs = app.specs()
    batch_size = app.training.batch_size
    datasets = {name: make_dataset(part, specs, batch_size=batch_size, training=name == "train", seed=tuner.seed)
                for name, part in (("train", tuner.train), ("val", tuner.val))}
    class_weight = (training.class_weights(tuner.train.labels, len(app.data.labels))
                    if app.training.class_weights and not app.data.multi_label else None)
    keras.utils.set_random_seed(tuner.seed)
    start = time.perf_counter()
    model = build_app_model(app, specs, tuner.train)
    trial_dir = tuner.get_trial_dir(trial.trial_id)
    summary = train_app_model(model, datasets, app, trial_dir,
                              dict(epochs=epochs, class_weight=class_weight, verbose=0),
                              -(-len(tuner.train) // batch_size))
    record = {"values": values, "seconds": time.perf_counter() - start, "epochs_run": summary["epochs_run"],
              "best_epoch": summary["best_epoch"], "monitor": summary["monitor"], "score": summary["best_value"]}
    with open(os.path.join(trial_dir, _TRIAL_RECORD), "w") as f:
        json.dump(record, f, indent=2)
    return summary["best_value"]


def write_trials(tuner, space, out_dir):
    """`trials.csv` and `trials.png`: every trial's values and validation score."""
    rows = []
    for trial_id in sorted(tuner.oracle.trials):
        trial = tuner.oracle.trials[trial_id]
        path = os.path.join(tuner.get_trial_dir(trial_id), _TRIAL_RECORD)
        record = {}
        if os.path.exists(path):  # a trial interrupted before its end has no record
            with open(path) as f:
                record = json.load(f)
        rows.append({"trial": trial_id, "status": trial.status,
                     **{p: trial.hyperparameters.values.get(p) for p in space},
                     "validation": trial.score, "epochs_run": record.get("epochs_run"),
                     "best_epoch": record.get("best_epoch"), "seconds": record.get("seconds")})
    with open(os.path.join(out_dir, "trials.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _trials_figure(rows, tuner.oracle.objective.direction).savefig(os.path.join(out_dir, "trials.png"))


def _trials_figure(rows, direction):
    from mmkeras.evaluation.plots import _figure

    scores = [(i + 1, row["validation"]) for i, row in enumerate(rows) if row["validation"] is not None]
    best, so_far = None, []
    for _, score in scores:
        best = score if best is None else (max(best, score) if direction == "max" else min(best, score))
        so_far.append(best)
    figure = _figure(6, 4)
    axes = figure.add_subplot()
    axes.plot([i for i, _ in scores], [s for _, s in scores], "o", label="trial")
    axes.step([i for i, _ in scores], so_far, where="post", label="best so far")
    axes.set(xlabel="trial", ylabel="validation score", title="Search")
    axes.legend()
    return figure


def write_best_app(app, best, score, path, manifest):
    """The app file with the winning values, and a comment with the search's figures."""
    with open(app.file) as f:
        contents = yaml.safe_load(f)
    contents["name"] = app.name  # the file lives outside the app's folder
    contents.pop("tune", None)
    for key, value in best.items():
        section, name = key.split(".")
        contents.setdefault(section, {})[name] = value
    if (contents.get("data") or {}).get("manifest"):
        contents["data"]["manifest"] = os.path.abspath(manifest)
    chosen = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                       for key, value in best.items())
    header = (f"# {app.name}: the best of `mmkeras tune` ({chosen}; "
              f"validation score {score:.4f}).\n# Run it: mmkeras run {path}\n")
    with open(path, "w") as f:
        f.write(header + yaml.safe_dump(contents, sort_keys=False))
    load_app(path)  # what `mmkeras run` will read: checked now
    return path


def _evaluate_on_test(app, trial_dir, test, out_dir):
    """The winner's best checkpoint on the test split: the search's only look at it."""
    from mmkeras import evaluation
    from mmkeras.api import load_model

    model = load_model(os.path.join(trial_dir, "checkpoints", "best.keras"))
    report = evaluation.evaluate(model, make_dataset(test, model.specs, batch_size=app.training.batch_size),
                                 normal_label=app.evaluation.normal_label, headline=app.evaluation.headline,
                                 out_dir=out_dir, verbose=0)
    return report["headline"]["value"]
