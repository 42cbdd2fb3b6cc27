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
import shutil


from mmkeras import app_config, modalities
from mmkeras.data.manifest import load_examples
from mmkeras.data.pipeline import make_dataset
from mmkeras.app_data import demo_ceilings, prepare_data, raw_examples, resolve_manifest  # noqa: F401 (public here)
from mmkeras.data.splits import write_split


@dataclasses.dataclass(frozen=True)
class App:
    """A checked `app.yaml`: typed sections (`mmkeras.app_config`), inputs as written.

    Example:
    >>> app = App.from_config({"name": "notes", "data": {"label_column": "y", "labels": ["a", "b"]},
    ...                        "inputs": [{"kind": "text", "name": "note"}]})
    >>> app.name, app.training.batch_size, [spec.name for spec in app.specs()]
    ('notes', 32, ['note'])
    """

    name: str
    path: str
    data: app_config.DataConfig
    inputs: list
    model: app_config.ModelConfig
    training: app_config.TrainingConfig
    evaluation: app_config.EvaluationConfig
    export: app_config.ExportConfig
    description: str = ""
    file: str = "app.yaml"
    tune: dict | None = None  # the `tune:` section: {path: tune_space.Choice | Range}

    @classmethod
    def from_config(cls, contents, file="app.yaml"):
        """The app an app file's contents (a mapping) describe, checked
        (`mmkeras.app_config.parse_config`); it is named after its folder unless
        it says `name:`."""
        path = os.path.dirname(os.path.abspath(file))
        parsed = app_config.parse_config(contents, file)
        name = parsed.pop("name") or os.path.basename(path)
        return cls(name=name, path=path, file=file, **parsed)

    def specs(self):
        """Fresh modality specs (they learn state when the model is built).

        Raises:
            ValueError: an input spec the modality refuses (an unknown or bad
                key), naming the app file and `inputs[i]`.
        """
        specs = []
        for i, spec in enumerate(self.inputs):
            spec = {key: value for key, value in spec.items() if key != "column"}
            try:
                specs.append(modalities.from_config(copy.deepcopy(spec)))
            except (TypeError, ValueError) as e:
                # A TypeError here is an unexpected keyword: list the ones the kind takes.
                keys = _accepted_keys(spec) if isinstance(e, TypeError) else ""
                raise ValueError(f"{self.file}: inputs[{i}] ({spec['name']!r}): {e}{keys}") from e
        return specs

    def columns(self):
        """`{input name: manifest column}` for inputs with a `column:` key."""
        return {spec["name"]: spec["column"] for spec in self.inputs if "column" in spec}

    def load_examples(self, manifest, **options):
        """The manifest's rows validated against this app's inputs, labels and
        column mapping (`mmkeras.data.load_examples`; `options` go to it)."""
        return load_examples(manifest, self.specs(), self.data.label_column, self.data.labels,
                             multi_label=self.data.multi_label, columns=self.columns(),
                             allow_outside_paths=self.data.allow_outside_paths, **options)


def _accepted_keys(spec):
    """`"; accepted keys: ..."` for a spec of a known kind, else ""."""
    import inspect

    spec_class = modalities.MODALITIES.get(spec["kind"])
    if spec_class is None:
        return ""
    keys = [name for name in inspect.signature(spec_class.__init__).parameters if name != "self"]
    return f"; accepted keys: kind, {', '.join(keys)}, column"


def load_app(path):
    """Reads `apps/<name>/app.yaml` (or the YAML file itself).

    The file is checked whole (`mmkeras.app_config`): an unknown key or a bad
    value is an error naming the file and the key's path.

    Example:
    >>> load_app("apps/sentiment").data.labels
    ['negative', 'neutral', 'positive']
    """
    app = App.from_config(*app_config.read_app_file(path))
    app.specs()  # a bad input (an unknown kind, a wrong key or value) fails now, naming it
    return app


def from_manifest(manifest, label, name=None, out_dir=None):
    """Writes an app for a manifest of your own and loads it (`mmkeras init`).

    Each column's kind is decided from what it holds
    (`mmkeras.app_from_manifest`); the app.yaml goes to `out_dir` (default
    `apps/<name>`), with a comment on each input saying why.

    Example:
    >>> app = from_manifest("data/table.csv", label="label")  # doctest: +SKIP
    >>> run_app(app)  # doctest: +SKIP
    """
    from mmkeras import app_from_manifest

    plan = app_from_manifest.plan_app(manifest, label, name=name)
    return load_app(app_from_manifest.write_app(plan, out_dir or os.path.join("apps", plan.name)))


def with_overrides(app, settings):
    """A copy of `app` with `section.key=value` settings applied.

    Values are read as YAML (`3` is an int, `[a, b]` a list, `null` None)
    and checked like the file's own keys.

    Args:
        app: an `App`.
        settings: strings such as `"training.patience=20"`.

    Example:
    >>> app = with_overrides(load_app("apps/sentiment"), ["training.epochs=3", "model.fusion=concat"])
    >>> app.training.epochs, app.model.fusion
    (3, 'concat')
    """
    sections = {name: getattr(app, name) for name in app_config.SECTIONS}
    app = dataclasses.replace(app, **app_config.apply_settings(sections, settings, app.file))
    app.specs()  # a bad input fails now, not after the demo data is made
    return app


def build_app_model(app, specs, train):
    """The fused model of an app, adapted on the training examples."""
    from mmkeras.builder import build_model

    model = app.model
    return build_model(specs, fusion=model.fusion, task=_task(app, auxiliary_heads=model.auxiliary_heads),
                       projection_dim=model.projection_dim, modality_dropout=model.modality_dropout,
                       fusion_options=model.fusion_options, feature_norm=model.feature_norm,
                       adapt_data=train.columns)


def _task(app, auxiliary_heads=False):
    from mmkeras.tasks import Classification

    return Classification(labels=app.data.labels, multi_label=app.data.multi_label,
                          threshold=app.data.threshold, auxiliary_heads=auxiliary_heads)


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
    base_dir = export_dir or app.export.base_dir or os.path.join("savedmodels", app.name)
    print(f"[{app.name}] writing the run to {os.path.abspath(work_dir)}"
          + (f", the SavedModel under {os.path.abspath(base_dir)}" if export else ""))
    refusals = [reason for spec in app.specs() if (reason := spec.edge_refusal())] if export else []
    if refusals and app.export.litert is not None:  # said now, not after training
        raise ValueError(f"{app.file}: export.litert: this app cannot run as a LiteRT model:\n  "
                         + "\n  ".join(refusals) + "\nSet export.litert: null.")
    created = not os.path.exists(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    data, train_config = app.data, app.training
    keras.utils.set_random_seed(seed)
    if train_config.deterministic:
        training.enable_determinism()
    multi_label = data.multi_label

    # === Data ===
    try:
        manifest, split = prepare_data(app, manifest, work_dir, num_examples, seed)
    except Exception:
        if created:  # nothing of value is in it yet: no empty run folder is left behind
            shutil.rmtree(work_dir, ignore_errors=True)
        raise
    train, val, test = split
    write_split(work_dir, manifest, seed, train, val, test, how=split.how)
    print(f"[{app.name}] data: {manifest} -> {len(train)} train / {len(val)} validation / {len(test)} test")
    specs = app.specs()
    batch_size = train_config.batch_size
    datasets = {name: make_dataset(part, specs, batch_size=batch_size, training=name == "train", seed=seed)
                for name, part in (("train", train), ("val", val), ("test", test))}
    steps_per_epoch = -(-len(train) // batch_size)
    class_weight = (training.class_weights(train.labels, len(data.labels))
                    if train_config.class_weights and not multi_label else None)

    # === Fused model ===
    with _precision(train_config.precision):
        distribution = training.strategy(train_config.strategy)
        with distribution.scope():
            model = build_app_model(app, specs, train)
        fit_options = dict(epochs=epochs or train_config.epochs, class_weight=class_weight,
                           verbose=verbose)
        trainings = {"model": train_app_model(model, datasets, app, os.path.join(work_dir, "fused"),
                                              fit_options, steps_per_epoch)}

    model_path = os.path.join(work_dir, "model.keras")
    model.save(model_path + ".partial.keras")  # a crash mid-save keeps the previous model
    os.replace(model_path + ".partial.keras", model_path)

    # === Unimodal baselines ===
    baseline_models = {}
    if baselines:
        for spec in specs:
            print(f"[{app.name}] baseline: {spec.name} only")
            with _precision(train_config.precision), distribution.scope():
                baseline = build_unimodal(spec, _task(app), projection_dim=app.model.projection_dim,
                                          feature_norm=app.model.feature_norm, adapt_data=train.columns)
            name = f"{spec.name} only"
            trainings[name] = train_app_model(baseline, _only(datasets, spec.name), app,
                                              os.path.join(work_dir, f"baseline_{spec.name}"), fit_options,
                                              steps_per_epoch)
            baseline_models[name] = (baseline, spec.name)

    # === Evaluation ===
    report = evaluation.evaluate(
        model, datasets["test"],  # labels and multi-label: the model's own task
        normal_label=app.evaluation.normal_label, baselines=baseline_models,
        ceilings=demo_ceilings(app, manifest, test.rows, specs, baseline_models),
        out_dir=os.path.join(work_dir, "report"), tensorboard_dir=os.path.join(work_dir, "fused", "tensorboard"),
        headline=app.evaluation.headline, seed=seed, training=trainings, verbose=verbose,
        run={"app": os.path.abspath(app.file), "data": os.path.abspath(manifest), "seed": seed,
             "split": {"train": len(train), "validation": len(val), "test": len(test), **split.how}},
    )
    table = evaluation.format_results_table(report)

    # === Export ===
    export_path = None
    if export:
        from mmkeras.export import export as export_model

        export_path = export_model(model, base_dir, sample_inputs=raw_examples(test, specs),
                                   metrics=report.get("headline"), serving_version=app.export.serving_version)
    litert_path = _export_litert(app, model, base_dir, export_path, train, test) if export_path else None
    print(table)
    if export_path:
        print(f"[{app.name}] exported to {export_path}" + (f" and {litert_path}" if litert_path else "")
              + f"; report in {os.path.join(work_dir, 'report')}")
    return {"report": report, "export_path": export_path, "litert_path": litert_path, "model_path": model_path,
            "results_table": table, "model": model, "baselines": baseline_models}


def _export_litert(app, model, base_dir, export_path, train, test):
    """`export.litert`: the LiteRT file beside the SavedModel (`<base_dir>/litert/<same version>`),
    calibrated on training rows and compared with the Keras model on the test split."""
    if app.export.litert is None:
        return None
    from mmkeras.data.pipeline import decoded_arrays
    from mmkeras.litert import export_litert, representative_arrays

    quantize = app.export.litert
    representative = representative_arrays(train, model.specs) if quantize == "int8" else None
    return export_litert(model, os.path.join(base_dir, "litert"), int(os.path.basename(export_path)),
                         quantize=quantize, representative=representative,
                         check_inputs=decoded_arrays(test, model.specs), overwrite=True)


def train_app_model(model, datasets, app, out_dir, fit_options, steps_per_epoch):
    """Compiles and fits `model` as the app says; returns its `training_summary`."""
    from mmkeras import evaluation, training

    compile_app_model(model, app, total_steps=fit_options["epochs"] * steps_per_epoch)
    confusion = None if app.data.multi_label else evaluation.ConfusionMatrixCallback(
        datasets["val"], app.data.labels, os.path.join(out_dir, "tensorboard"))
    settings = {**dataclasses.asdict(app.model), **dataclasses.asdict(app.training)}
    hparams = {key: value for key, value in settings.items() if isinstance(value, (bool, int, float, str))}
    # The best epoch is the one with the best validation headline, or the
    # nearest logged metric where Keras cannot log the headline per epoch.
    headline = app.evaluation.headline
    monitor = training.validation_monitor(model, headline)
    if training.monitor_note(model, headline):
        print(f"[{app.name}] best epoch by {monitor}: {training.monitor_note(model, headline)}")
    training.fit(model, datasets["train"], datasets["val"], out_dir=out_dir, monitor=monitor,
                 patience=app.training.patience, confusion_matrix=confusion, hparams=hparams,
                 **fit_options)
    return training.training_summary(out_dir, fit_options["epochs"], app.training.patience)


def compile_app_model(model, app, total_steps):
    """Compiles `model` with the app's `training` settings (`training.compile_model`).

    Args:
        model: the fused model or a baseline.
        app: an `App`.
        total_steps: training steps of the whole run, for the learning-rate schedule.

    Example:
    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="label")(inputs))
    >>> app = with_overrides(load_app("apps/sentiment"), ["training.clipnorm=0.5"])
    >>> compile_app_model(model, app, total_steps=100).optimizer.global_clipnorm
    0.5
    """
    from mmkeras import training

    config = app.training
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = training.warmup_cosine(learning_rate, total_steps)
    return training.compile_model(model, multi_label=app.data.multi_label, learning_rate=learning_rate,
                                  optimizer=config.optimizer, label_smoothing=config.label_smoothing,
                                  jit_compile=config.jit_compile, clipnorm=config.clipnorm,
                                  auxiliary_loss_weight=config.auxiliary_loss_weight,
                                  headline=app.evaluation.headline)


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
