"""Application templates: `apps/<name>/app.yaml` -> data, model, training, report, export.

`run_app` is the whole path a template shows: generate demo data when no
manifest is given, validate it, train the fused model and one unimodal
baseline per modality, evaluate them side by side, and export the fused model
as a SavedModel.
"""

import contextlib
import copy
import dataclasses
import os

import numpy as np
import yaml

from mmkeras import modalities
from mmkeras.data.manifest import Examples, load_examples, raw_file_bytes
from mmkeras.data.pipeline import make_dataset

SECTIONS = ("data", "inputs", "model", "training", "evaluation", "export")
# The keys each dict section may hold (README "App configuration"): a typo is
# an error, not a silently ignored setting.
SECTION_KEYS = {
    "data": ("manifest", "demo_examples", "label_column", "labels", "multi_label", "threshold",
             "validation_fraction", "test_fraction", "on_error"),
    "model": ("fusion", "projection_dim", "modality_dropout", "fusion_options", "auxiliary_heads"),
    "training": ("epochs", "batch_size", "learning_rate", "lr_schedule", "optimizer",
                 "label_smoothing", "class_weights", "patience", "precision", "strategy",
                 "jit_compile"),
    "evaluation": ("headline", "normal_label"),
    "export": ("base_dir", "serving_version"),
}


@dataclasses.dataclass
class App:
    """A parsed `app.yaml`. Sections are plain dicts, as written in the file."""

    name: str
    path: str
    data: dict
    inputs: list
    model: dict
    training: dict
    evaluation: dict
    export: dict
    description: str = ""
    file: str = "app.yaml"

    def specs(self):
        """Fresh modality specs (they learn state when the model is built).

        Raises:
            ValueError: an input spec the modality refuses (an unknown or bad
                key), naming the app file and `inputs[i]`.
        """
        specs = []
        for i, config in enumerate(self.inputs):
            config = {key: value for key, value in config.items() if key != "column"}
            try:
                specs.append(modalities.from_config(copy.deepcopy(config)))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{self.file}: inputs[{i}] ({config.get('name')!r}): "
                                 f"{e}{_accepted_keys(config)}") from e
        return specs

    def columns(self):
        """`{input name: manifest column}` for inputs with a `column:` key."""
        return {config["name"]: config["column"] for config in self.inputs if "column" in config}

    def load_examples(self, manifest, **options):
        """The manifest's rows validated against this app's inputs, labels and
        column mapping (`mmkeras.data.load_examples`; `options` go to it)."""
        return load_examples(manifest, self.specs(), self.data["label_column"], self.data["labels"],
                             multi_label=self.data.get("multi_label", False), columns=self.columns(),
                             **options)


def _accepted_keys(config):
    """`"; accepted keys: ..."` for a spec of a known kind, else ""."""
    import inspect

    spec_class = modalities.MODALITIES.get(config.get("kind"))
    if spec_class is None:
        return ""
    keys = [name for name in inspect.signature(spec_class.__init__).parameters if name != "self"]
    return f"; accepted keys: kind, {', '.join(keys)}, column"


def load_app(path):
    """Reads `apps/<name>/app.yaml` (or the YAML file itself).

    Example:
    >>> load_app("apps/sentiment").data["labels"]
    ['negative', 'neutral', 'positive']
    """
    path = os.fspath(path)
    file = os.path.join(path, "app.yaml") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"No app config at {file}")
    with open(file) as f:
        config = yaml.safe_load(f) or {}
    unknown = set(config) - set(SECTIONS) - {"name", "description"}
    if unknown:
        raise ValueError(f"{file}: unknown section(s) {sorted(unknown)}; expected {list(SECTIONS)}")
    for section in ("data", "inputs"):
        if not config.get(section):
            raise ValueError(f"{file}: the `{section}` section is required")
    for field in ("labels", "label_column"):
        if field not in config["data"]:
            raise ValueError(f"{file}: `data.{field}` is required")
    for i, spec in enumerate(config["inputs"]):
        if "kind" not in spec or "name" not in spec:
            raise ValueError(f"{file}: inputs[{i}] needs `kind` and `name`. Received: {spec}")
    for section in SECTION_KEYS:
        _check_keys(file, section, config.get(section) or {})
    return App(
        name=config.get("name") or os.path.basename(os.path.dirname(os.path.abspath(file))),
        path=os.path.dirname(os.path.abspath(file)),
        file=file,
        description=config.get("description", ""),
        **{section: config.get(section) or ({} if section != "inputs" else []) for section in SECTIONS},
    )


def _check_keys(file, section, values):
    if not isinstance(values, dict):
        raise ValueError(f"{file}: `{section}` must be a mapping of keys to values. Received: {values!r}")
    unknown = sorted(set(values) - set(SECTION_KEYS[section]))
    if unknown:
        raise ValueError(f"{file}: unknown key(s) {unknown} in `{section}`; "
                         f"known: {list(SECTION_KEYS[section])}")


def with_overrides(app, settings):
    """A copy of `app` with `section.key=value` settings applied.

    Values are read as YAML (`3` is an int, `[a, b]` a list, `null` None)
    and checked like the file's own keys.

    Args:
        app: an `App`.
        settings: strings such as `"training.patience=20"`.

    Example:
    >>> app = with_overrides(load_app("apps/sentiment"), ["training.epochs=3", "model.fusion=concat"])
    >>> app.training["epochs"], app.model["fusion"]
    (3, 'concat')
    """
    app = copy.deepcopy(app)
    for setting in settings:
        key, equals, value = setting.partition("=")
        section, dot, name = key.strip().partition(".")
        if not equals or not dot or not name:
            raise ValueError(f"Expected a setting as section.key=value; received {setting!r}")
        if section not in SECTION_KEYS:
            raise ValueError(f"Cannot set {setting!r}: settable sections are {list(SECTION_KEYS)}")
        overridden = {**getattr(app, section), name: yaml.safe_load(value)}
        _check_keys(f"{app.file} (--set {setting})", section, overridden)
        setattr(app, section, overridden)
    app.specs()  # the inputs still build
    return app


def split_examples(examples, validation_fraction, test_fraction, seed=0):
    """Deterministic train / validation / test split of `Examples`."""
    order = np.random.default_rng(seed).permutation(len(examples))
    num_test = int(round(len(order) * test_fraction))
    num_val = int(round(len(order) * validation_fraction))
    parts = (order[num_test + num_val:], order[num_test:num_test + num_val], order[:num_test])
    empty = [name for name, part in zip(("train", "validation", "test"), parts) if len(part) == 0]
    if empty:
        raise ValueError(
            f"{len(examples)} example(s) with validation_fraction={validation_fraction} and "
            f"test_fraction={test_fraction} leave the {' and '.join(empty)} split(s) empty; "
            f"use more data or other fractions."
        )
    return tuple(_subset(examples, np.sort(indices)) for indices in parts)


def _subset(examples, indices):
    return Examples({name: values[indices] for name, values in examples.columns.items()},
                    examples.labels[indices], [examples.rows[i] for i in indices])


def resolve_manifest(app, manifest=None, work_dir="runs", num_examples=None, seed=0):
    """The manifest to use: `manifest`, else the app's `data.manifest` (relative
    to the app folder), else demo data generated into `work_dir/demo_data`."""
    data = app.data
    manifest = manifest or data.get("manifest")
    if manifest and not os.path.isabs(manifest) and not os.path.exists(manifest):
        manifest = os.path.join(app.path, manifest)
    if not manifest:
        from mmkeras.data import demo

        count = num_examples or data.get("demo_examples", 600)
        manifest = demo.generate(app.name, os.path.join(work_dir, "demo_data"), num_examples=count,
                                 seed=seed, image_size=_demo_image_size(app))
    return manifest


def prepare_data(app, manifest=None, work_dir="runs", num_examples=None, seed=0):
    """Manifest (or generated demo data) -> validated train/validation/test `Examples`."""
    data = app.data
    manifest = resolve_manifest(app, manifest, work_dir, num_examples, seed)
    examples, errors = app.load_examples(manifest, on_error=data.get("on_error", "raise"),
                                         report_path=os.path.join(work_dir, "skipped_rows.csv"))
    if errors:
        print(f"Skipped {len(errors)} bad row(s); see {os.path.join(work_dir, 'skipped_rows.csv')}")
    splits = split_examples(examples, data.get("validation_fraction", 0.15),
                            data.get("test_fraction", 0.15), seed=seed)
    return manifest, splits


SPLIT_FILE = "split.json"


def _write_split(work_dir, manifest, seed, train, val, test):
    """Records which manifest rows went to which split, for `mmkeras evaluate`."""
    import json

    record = {"manifest": os.path.abspath(manifest), "seed": seed,
              "rows": {"train": train.rows, "validation": val.rows, "test": test.rows}}
    path = os.path.join(work_dir, SPLIT_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


def recorded_test_split(app, work_dir):
    """The test examples of the run in `work_dir` (the rows its model never trained on)."""
    import json

    path = os.path.join(work_dir, SPLIT_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {SPLIT_FILE} in {work_dir}: run `mmkeras run` or `mmkeras train` "
                                f"there first, or pass --data to evaluate on another manifest.")
    with open(path) as f:
        record = json.load(f)
    examples, _ = app.load_examples(record["manifest"], on_error="skip",
                                    report_path=os.path.join(work_dir, "skipped_rows.csv"))
    position = {row: i for i, row in enumerate(examples.rows)}
    gone = [row for row in record["rows"]["test"] if row not in position]
    if gone:
        raise ValueError(
            f"{len(gone)} of the {len(record['rows']['test'])} test rows of the run in {work_dir} are no "
            f"longer valid rows of {record['manifest']} (rows {gone[:10]}); the manifest or its files "
            f"changed since. Evaluate on a manifest with --data, or run again.")
    return _subset(examples, np.asarray([position[row] for row in record["rows"]["test"]]))


def demo_ceilings(app, manifest, rows, specs, baselines):
    """The best scores the demo data allows the fused model and each baseline
    (`mmkeras.data.ceiling`); None for data that is not the app's demo data."""
    from mmkeras.data import ceiling, demo

    cues = os.path.join(os.path.dirname(manifest), demo.CUES_NAME)
    if app.name not in demo.DEMO_APPS or not os.path.exists(cues):
        return None
    columns = {spec.name: spec.features if spec.kind == "sensor" else [spec.name] for spec in specs}
    seen = {"model": sum(columns.values(), [])}
    seen.update({name: columns[input_name] for name, (_, input_name) in baselines.items()})
    return {name: ceiling.ceiling_scores(app.name, cues, rows, ceiling.source_names_of(app.name, cols))
            for name, cols in seen.items()}


def _demo_image_size(app):
    sizes = [spec["size"][0] for spec in app.inputs if spec["kind"] == "image" and "size" in spec]
    return sizes[0] if sizes else 64


def build_app_model(app, specs, train):
    """The fused model of an app, adapted on the training examples."""
    from mmkeras.builder import build_model

    model_config = dict(app.model)
    fusion = model_config.pop("fusion", "concat")
    task = _task(app, auxiliary_heads=model_config.pop("auxiliary_heads", False))
    return build_model(specs, fusion=fusion, task=task, adapt_data=train.columns, **model_config)


def _task(app, auxiliary_heads=False):
    from mmkeras.tasks import Classification

    data = app.data
    return Classification(labels=data["labels"], multi_label=data.get("multi_label", False),
                          threshold=data.get("threshold", 0.5), auxiliary_heads=auxiliary_heads)


def run_app(app, *, manifest=None, work_dir=None, export_dir=None, num_examples=None, epochs=None,
            baselines=True, export=True, seed=0, verbose="auto"):
    """Runs an app template end to end and returns its results.

    Args:
        app: an `App` or the path of an app folder / `app.yaml`.
        manifest: data to use instead of `data.manifest` (None and no
            manifest in the config: generate the demo data).
        work_dir: run folder for demo data, logs, checkpoints and the report
            (default `runs/<app>`).
        export_dir: SavedModel base folder (default `export.base_dir`).
        num_examples: demo data size (default `data.demo_examples`).
        epochs: overrides `training.epochs` (quick runs and tests).
        baselines: also train and report one unimodal model per modality.
        export: export the fused model.
        seed: seed for data generation, splitting and weights.

    Returns:
        A dict with `report` (the evaluation results), `export_path` and
        `results_table`.

    Example:
    >>> results = run_app("apps/sentiment", num_examples=60, epochs=1)  # doctest: +SKIP
    """
    import keras

    from mmkeras import evaluation, training
    from mmkeras.builder import build_unimodal

    app = app if isinstance(app, App) else load_app(app)
    work_dir = work_dir or os.path.join("runs", app.name)
    os.makedirs(work_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    data, train_config = app.data, app.training
    multi_label = data.get("multi_label", False)

    # === Data ===
    manifest, (train, val, test) = prepare_data(app, manifest, work_dir, num_examples, seed)
    _write_split(work_dir, manifest, seed, train, val, test)
    print(f"[{app.name}] data: {manifest} -> {len(train)} train / {len(val)} validation / {len(test)} test")
    specs = app.specs()
    batch_size = train_config.get("batch_size", 32)
    datasets = {name: make_dataset(part, specs, batch_size=batch_size, training=name == "train", seed=seed)
                for name, part in (("train", train), ("val", val), ("test", test))}
    steps_per_epoch = -(-len(train) // batch_size)
    class_weight = (training.class_weights(train.labels, len(data["labels"]))
                    if train_config.get("class_weights", True) and not multi_label else None)

    # === Fused model ===
    with _precision(train_config.get("precision", "float32")):
        distribution = training.strategy(train_config.get("strategy", "default"))
        with distribution.scope():
            model = build_app_model(app, specs, train)
        fit_options = dict(epochs=epochs or train_config.get("epochs", 10), class_weight=class_weight,
                           verbose=verbose)
        _train(model, datasets, app, os.path.join(work_dir, "fused"), fit_options, steps_per_epoch)

    model_path = os.path.join(work_dir, "model.keras")
    model.save(model_path + ".partial.keras")  # a crash mid-save keeps the previous model
    os.replace(model_path + ".partial.keras", model_path)

    # === Unimodal baselines ===
    baseline_models = {}
    if baselines:
        for spec in specs:
            print(f"[{app.name}] baseline: {spec.name} only")
            with _precision(train_config.get("precision", "float32")), distribution.scope():
                baseline = build_unimodal(spec, _task(app), projection_dim=app.model.get("projection_dim", 128))
            _train(baseline, _only(datasets, spec.name), app,
                   os.path.join(work_dir, f"baseline_{spec.name}"), fit_options, steps_per_epoch)
            baseline_models[f"{spec.name} only"] = (baseline, spec.name)

    # === Evaluation ===
    evaluation_config = app.evaluation
    report = evaluation.evaluate(
        model, datasets["test"], labels=data["labels"], multi_label=multi_label,
        normal_label=evaluation_config.get("normal_label"), baselines=baseline_models,
        ceilings=demo_ceilings(app, manifest, test.rows, specs, baseline_models),
        out_dir=os.path.join(work_dir, "report"), tensorboard_dir=os.path.join(work_dir, "fused", "tensorboard"),
        headline=evaluation_config.get("headline"), seed=seed, verbose=verbose,
    )
    table = evaluation.format_results_table(report)

    # === Export ===
    export_path = None
    if export:
        from mmkeras.export import export as export_model
        from mmkeras.serving.op_check import DEFAULT_SERVING_VERSION

        base_dir = export_dir or app.export.get("base_dir") or os.path.join("savedmodels", app.name)
        export_path = export_model(model, base_dir, sample_inputs=raw_examples(test, specs),
                                   metrics=report.get("headline"),
                                   serving_version=app.export.get("serving_version", DEFAULT_SERVING_VERSION))
    print(table)
    if export_path:
        print(f"[{app.name}] exported to {export_path}; report in {os.path.join(work_dir, 'report')}")
    return {"report": report, "export_path": export_path, "model_path": model_path,
            "results_table": table, "model": model, "baselines": baseline_models}


def _train(model, datasets, app, out_dir, fit_options, steps_per_epoch):
    from mmkeras import evaluation, training

    config, multi_label = app.training, app.data.get("multi_label", False)
    learning_rate = config.get("learning_rate", 1e-3)
    if config.get("lr_schedule", "cosine") == "cosine":
        learning_rate = training.warmup_cosine(learning_rate, fit_options["epochs"] * steps_per_epoch)
    training.compile_model(model, multi_label=multi_label, learning_rate=learning_rate,
                           optimizer=config.get("optimizer", "adamw"),
                           label_smoothing=config.get("label_smoothing", 0.0),
                           jit_compile=config.get("jit_compile", False))
    confusion = None if multi_label else evaluation.ConfusionMatrixCallback(
        datasets["val"], app.data["labels"], os.path.join(out_dir, "tensorboard"))
    hparams = {key: value for key, value in {**app.model, **config}.items()
               if isinstance(value, (bool, int, float, str))}
    # The best epoch is the one with the best validation headline, when
    # training logs it (`training.validation_monitor`).
    monitor = training.validation_monitor(model, _LOGGED_HEADLINES.get(app.evaluation.get("headline")))
    training.fit(model, datasets["train"], datasets["val"], out_dir=out_dir, monitor=monitor,
                 patience=config.get("patience", 8), confusion_matrix=confusion, hparams=hparams,
                 **fit_options)


# Report headlines and the training-log metric that tracks each.
_LOGGED_HEADLINES = {"accuracy": "accuracy", "macro_f1": "macro_f1", "roc_auc_macro": "auc"}


@contextlib.contextmanager
def _precision(policy):
    """Sets the Keras dtype policy for a block (models built inside keep it)."""
    import keras

    from mmkeras import training

    previous = keras.config.dtype_policy()
    training.set_precision(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _only(datasets, name):
    # A named function: AutoGraph cannot read a lambda's source in a comprehension.
    def keep(x, y):
        return {name: x[name]}, y

    return {split: ds.map(keep) for split, ds in datasets.items()}


def raw_examples(examples, specs, count=4):
    """The first `count` examples as raw client inputs (file bytes, text, floats)."""
    raw = []
    for i in range(min(count, len(examples))):
        example = {}
        for spec in specs:
            value = examples.columns[spec.name][i]
            if spec.kind in ("image", "audio"):
                value = raw_file_bytes(value, spec.kind) if value else b""
            elif spec.kind == "sensor":
                value = np.asarray(value, "float32").tolist()
            example[spec.name] = value
        raw.append(example)
    return raw
