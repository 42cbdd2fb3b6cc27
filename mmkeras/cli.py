"""The `mmkeras` command.

    mmkeras init table.csv --label label   # your own table -> apps/table/app.yaml
    mmkeras run apps/sentiment             # demo data -> train -> report -> export
    mmkeras run apps/sentiment --fusion concat --epochs 30 --set training.patience=20
    mmkeras train apps/sentiment --data manifest.csv
    mmkeras evaluate apps/sentiment --model runs/sentiment/model.keras
    mmkeras explain apps/sentiment --rows 3 17     # why the model decided, for manifest rows
    mmkeras tune apps/sentiment --trials 20 --max-minutes 60   # KerasTuner over the app's settings
    mmkeras export runs/sentiment/model.keras savedmodels/sentiment
    mmkeras data validate apps/sentiment --data manifest.csv
    mmkeras data to-tfrecord apps/sentiment --data manifest.csv --out data/tfrecords
    mmkeras serve savedmodels/             # development stand-in for TF Serving
    mmkeras predict --model sentiment review="great" photo=@photo.jpg
    mmkeras serving-config ...             # models.config, batching, docker/apt commands
"""

import argparse
import os
import sys

import yaml

from mmkeras.app_config import LITERT_QUANTIZATIONS
from mmkeras.serving.errors import ServingError
from mmkeras.serving.op_check import DEFAULT_SERVING_VERSION

# A mistake in the user's config, data, files or arguments, or a server that
# answered an error: the message says what and where, so the command prints it
# without a traceback (unless --debug). OSError covers missing, existing and
# unwritable paths; TypeError a wrong type in a config or argument.
USER_ERRORS = (ValueError, TypeError, OSError, yaml.YAMLError, ServingError)


def _is_user_error(error):
    # ExportError (a failed op or parity check) is checked by name of its module:
    # importing mmkeras.export here would load TensorFlow for every command.
    export = sys.modules.get("mmkeras.export")
    return isinstance(error, USER_ERRORS) or (export is not None and isinstance(error, export.ExportError))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = _parser().parse_args(argv)
        if not hasattr(args, "handler"):
            _parser().print_help()
            return 2
        return args.handler(args) or 0
    except Exception as e:
        if debug or not _is_user_error(e):
            raise
        print(f"mmkeras: error: {e}\n(run with --debug for the traceback)", file=sys.stderr)
        return 1


def _parser():
    parser = argparse.ArgumentParser(prog="mmkeras", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    init = commands.add_parser("init", help="write an app.yaml for your own manifest",
                               description="Decide each column's input kind from what it holds and write "
                                           "an app.yaml that `mmkeras run` trains with no edit.")
    init.add_argument("data", help="a manifest (CSV/JSONL) of your data")
    init.add_argument("--label", required=True, help="the column holding the class names")
    init.add_argument("--name", help="the app's name (default: the manifest's file name)")
    init.add_argument("--out", help="the app's folder (default: apps/<name>)")
    init.set_defaults(handler=_init)

    run = _app_command(commands, "run", "demo data (or --data) -> validate -> train -> evaluate -> export",
                       training=True)
    run.add_argument("--no-baselines", action="store_true", help="skip the unimodal baselines")
    run.add_argument("--no-export", action="store_true")
    run.add_argument("--export-dir", help="SavedModel base folder (default: the app's export.base_dir)")
    run.set_defaults(handler=_run)

    train = _app_command(commands, "train", "train (and evaluate) the fused model; save it as .keras",
                         training=True)
    train.set_defaults(handler=_train)

    tune = commands.add_parser("tune", help="search the app's settings with KerasTuner",
                               description="Search the app.yaml's `tune:` space (or a default one) on the "
                                           "training and validation splits; the winner is evaluated once on "
                                           "the test split and written as runs/<app>/tuning/best_app.yaml.")
    tune.add_argument("app", help="an app folder (apps/<name>) or its app.yaml")
    tune.add_argument("--data", help="a manifest (default: the app's, or demo data)")
    tune.add_argument("--trials", type=int, default=10, help="trials at most (default 10)")
    tune.add_argument("--max-minutes", type=float, help="start no trial after this many minutes")
    tune.add_argument("--algorithm", default="bayesian", choices=["bayesian", "hyperband", "random"])
    tune.add_argument("--epochs", type=int, help="each trial's epochs (default: training.epochs)")
    tune.add_argument("--examples", type=int, help="demo data size (default: data.demo_examples)")
    tune.add_argument("--work-dir", help="the run folder (default: runs/<app>)")
    tune.add_argument("--seed", type=int, default=0)
    tune.set_defaults(handler=_tune)

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on its run's test split",
                                   description="Evaluate a .keras model on the test rows recorded by "
                                               "its run (runs/<app>/split.json), or on all of --data.")
    evaluate.add_argument("app", help="an app folder (apps/<name>) or its app.yaml")
    evaluate.add_argument("--model", required=True, help="a .keras file")
    evaluate.add_argument("--data", help="evaluate on every row of this manifest instead")
    evaluate.add_argument("--work-dir", help="the run folder (default: runs/<app>)")
    evaluate.add_argument("--out", help="report folder (default: a new <work-dir>/evaluations/<n>; "
                                        "the run's own report is never overwritten)")
    evaluate.set_defaults(handler=_evaluate)

    explain = commands.add_parser("explain", help="why the model decided, for chosen manifest rows",
                                  description="Write the report's explanation page (what each input added to "
                                              "the prediction, and where in each input) for manifest rows.")
    explain.add_argument("app", help="an app folder (apps/<name>) or its app.yaml")
    explain.add_argument("--rows", type=int, nargs="+", required=True, help="manifest row numbers (from 1)")
    explain.add_argument("--model", help="a .keras file (default: runs/<app>/model.keras)")
    explain.add_argument("--data", help="the manifest (default: the one the run recorded)")
    explain.add_argument("--out", help="output folder (default: runs/<app>/explain)")
    explain.set_defaults(handler=_explain)

    export = commands.add_parser("export", help="export a .keras model as a TF Serving SavedModel or a "
                                                "LiteRT file for devices")
    export.add_argument("model", help="a .keras file")
    export.add_argument("base_dir", help="the model's folder, e.g. savedmodels/sentiment")
    export.add_argument("--version", type=int)
    export.add_argument("--overwrite", action="store_true")
    export.add_argument("--serving-version", default=DEFAULT_SERVING_VERSION,
                        help="the TF Serving release to check the ops for: 2.20 (default) or 2.17-2.19")
    export.add_argument("--format", choices=["savedmodel", "litert"], default="savedmodel",
                        help="litert: one .tflite file, built-in ops only (pip install -e '.[edge]')")
    export.add_argument("--quantize", choices=LITERT_QUANTIZATIONS, default="none",
                        help="litert: float32 (none), float16 weights, or int8 (needs --data)")
    export.add_argument("--data", help="litert int8: a manifest whose first rows calibrate the ranges "
                                       "(the training rows)")
    export.add_argument("--label-column", default="label", help="the label column of --data")
    export.set_defaults(handler=_export)

    data = commands.add_parser("data", help="data utilities")
    data_commands = data.add_subparsers(title="data commands", metavar="COMMAND")
    validate = _app_command(data_commands, "validate", "validate data row by row and summarise it, "
                                                       "without training")
    validate.set_defaults(handler=_validate)
    tfrecord = _app_command(data_commands, "to-tfrecord", "write validated data as sharded TFRecords")
    tfrecord.add_argument("--out", required=True, help="output folder")
    tfrecord.add_argument("--shards", type=int, default=4)
    tfrecord.set_defaults(handler=_to_tfrecord)

    _add_serving_commands(commands)
    return parser


def _add_serving_commands(commands):
    """`serve`, `predict`, `serving-config`: their modules define the arguments
    (each also runs alone as `python -m <module>`). None of these modules imports
    TensorFlow; `serve` loads the dev server (which does) only when it runs."""
    from mmkeras.serving import client, config, dev_server_arguments

    for name, arguments, handler, help in (
            ("serve", dev_server_arguments, _serve, "development stand-in for TF Serving (REST + gRPC)"),
            ("predict", client, client.run, "send one example to a served model; prints JSON"),
            ("serving-config", config, config.run, "write TF Serving config (models.config, batching, "
                                                   "example requests) and print the commands that serve it")):
        command = commands.add_parser(name, help=help, description=help)
        arguments.build_arg_parser(command)
        command.set_defaults(handler=handler)


def _serve(args):
    from mmkeras.serving.dev_server import server

    return server.run(args)


def _app_command(commands, name, help, training=False):
    command = commands.add_parser(name, help=help, description=help)
    command.add_argument("app", help="an app folder (apps/<name>) or its app.yaml")
    command.add_argument("--data", help="manifest (CSV/JSONL); default: the app's, else demo data")
    command.add_argument("--work-dir", help="run folder (default: runs/<app>)")
    command.add_argument("--examples", type=int, help="demo data size")
    command.add_argument("--seed", type=int, default=0)
    if training:
        for flag, key, kind in _SHORTHANDS:
            command.add_argument(flag, type=kind, help=f"set {key}")
        command.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                             help="set any key of the app's data/model/training/evaluation/export "
                                  "sections (value read as YAML); repeatable")
    return command


# Flags for the settings tuned most often: each is a `--set`.
_SHORTHANDS = (("--fusion", "model.fusion", str), ("--epochs", "training.epochs", int),
               ("--learning-rate", "training.learning_rate", float),
               ("--batch-size", "training.batch_size", int))


def _configured_app(args):
    """The app of `args.app` with the command line's settings applied (checked
    like the file); every command that reads an app calls this first."""
    from mmkeras import app_config

    settings, flags = [], {}
    for flag, key, _ in _SHORTHANDS:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            settings.append(f"{key}={value}")
            flags[key] = flag
    try:
        settings += getattr(args, "set", [])
        app_config.check_file(args.app, settings)  # a mistake is answered before TensorFlow loads
        from mmkeras.app import load_app, with_overrides

        return with_overrides(load_app(args.app), settings)
    except ValueError as e:
        # Name the flag the user typed, not only the key it sets.
        message = str(e)
        for key, flag in flags.items():
            message = message.replace(f"{key}:", f"{flag} ({key}):")
        raise ValueError(message) from None


def _run(args):
    app = _configured_app(args)
    from mmkeras.app import run_app

    run_app(app, manifest=args.data, work_dir=args.work_dir, export_dir=args.export_dir,
            num_examples=args.examples, baselines=not args.no_baselines,
            export=not args.no_export, seed=args.seed)


def _train(args):
    app = _configured_app(args)
    from mmkeras.app import run_app

    results = run_app(app, manifest=args.data, work_dir=args.work_dir,
                      num_examples=args.examples, baselines=False, export=False, seed=args.seed)
    print(f"saved {results['model_path']}")


def _evaluate(args):
    app = _configured_app(args)
    from mmkeras import evaluation
    from mmkeras.api import load_model
    from mmkeras.data.pipeline import make_dataset
    from mmkeras.data.splits import SPLIT_FILE, recorded_split

    work_dir = args.work_dir or os.path.join("runs", app.name)
    if args.data:
        test, _ = app.load_examples(args.data)
    else:
        test = recorded_split(app, work_dir)
    model = load_model(args.model)
    out_dir = args.out or _new_evaluation_dir(work_dir)
    report = evaluation.evaluate(
        model, make_dataset(test, app.specs(), batch_size=app.training.batch_size),
        # The app's labels: evaluate refuses a model whose own labels differ.
        labels=app.data.labels, multi_label=app.data.multi_label,
        normal_label=app.evaluation.normal_label, headline=app.evaluation.headline, out_dir=out_dir,
        run={"app": os.path.abspath(app.file),
             "data": os.path.abspath(args.data) if args.data else
             f"the test rows recorded in {os.path.abspath(os.path.join(work_dir, SPLIT_FILE))}"})
    print(evaluation.format_results_table(report))
    print(f"report in {out_dir}")


def _tune(args):
    app = _configured_app(args)
    from mmkeras.tuning import tune_app

    tune_app(app, manifest=args.data, work_dir=args.work_dir, trials=args.trials,
             max_minutes=args.max_minutes, algorithm=args.algorithm, epochs=args.epochs,
             num_examples=args.examples, seed=args.seed)


def _explain(args):
    import json

    app = _configured_app(args)
    import numpy as np

    from mmkeras.api import load_model
    from mmkeras.data.splits import SPLIT_FILE, subset
    from mmkeras.evaluation.explain_rows import explain_rows

    work_dir = os.path.join("runs", app.name)
    manifest = args.data
    if manifest is None:
        with open(os.path.join(work_dir, SPLIT_FILE)) as f:
            manifest = json.load(f)["manifest"]
    examples, _ = app.load_examples(manifest)
    position = {row: i for i, row in enumerate(examples.rows)}
    unknown = [row for row in args.rows if row not in position]
    if unknown:
        raise ValueError(f"--rows: {unknown} are not data rows of {manifest} (rows {examples.rows[0]}-"
                         f"{examples.rows[-1]}).")
    out_dir = args.out or os.path.join(work_dir, "explain")
    model = load_model(args.model or os.path.join(work_dir, "model.keras"))
    explain_rows(model, subset(examples, np.array([position[row] for row in args.rows])), out_dir)
    print(f"explanations of rows {args.rows} in {out_dir}/explanation.html")


def _new_evaluation_dir(work_dir):
    """`<work_dir>/evaluations/<n>`, n one past the highest there: never an existing folder."""
    parent = os.path.join(work_dir, "evaluations")
    taken = [int(n) for n in os.listdir(parent) if n.isdigit()] if os.path.isdir(parent) else []
    return os.path.join(parent, str(max(taken, default=0) + 1))


def _init(args):
    from mmkeras import app_from_manifest

    plan = app_from_manifest.plan_app(args.data, args.label, name=args.name)
    path = app_from_manifest.write_app(plan, args.out or os.path.join("apps", plan.name))
    for line in app_from_manifest.format_plan(plan):
        print(f"  {line}")
    print(f"Wrote {path}; next: mmkeras data validate {os.path.dirname(path)}, then mmkeras run "
          f"{os.path.dirname(path)}")


def _export(args):
    from mmkeras.api import load_model
    from mmkeras.export import export

    if args.format == "savedmodel" and (args.quantize != "none" or args.data):
        raise ValueError("--quantize and --data are for --format litert")
    # The model's config carries its input specs and labels: nothing else is needed.
    model = load_model(args.model)
    if args.format == "litert":
        print(_export_litert(model, args))
        return
    print(export(model, args.base_dir, version=args.version, overwrite=args.overwrite,
                 serving_version=args.serving_version))


def _export_litert(model, args):
    from mmkeras.data.manifest import load_examples
    from mmkeras.litert import export_litert, representative_arrays

    representative = None
    if args.data:
        task = model.task
        examples, _ = load_examples(args.data, model.specs, args.label_column, task.labels, task.multi_label)
        representative = representative_arrays(examples, model.specs)
    return export_litert(model, args.base_dir, args.version, quantize=args.quantize,
                         representative=representative, overwrite=args.overwrite)


def _validate(args):
    """Every problem in the data (exit 1), or a summary of it (exit 0)."""
    app = _configured_app(args)
    from mmkeras.app import resolve_manifest
    from mmkeras.data.manifest import ManifestError
    from mmkeras.data.summary import format_summary, summarize

    work_dir = args.work_dir or os.path.join("runs", app.name)
    manifest = resolve_manifest(app, args.data, work_dir, args.examples, args.seed)
    try:
        examples, _ = app.load_examples(manifest)
    except ManifestError as e:
        print(e)
        return 1
    print(f"{manifest}: every row is valid")
    # The split `run --seed` would make of these rows, so a class missing from one shows now.
    from mmkeras.data.splits import split_examples

    data = app.data
    split = split_examples(examples, data.validation_fraction, data.test_fraction, seed=args.seed,
                           labels=data.labels)
    for line in format_summary(summarize(examples, app.specs(), data.labels, data.multi_label, split=split)):
        print(f"  {line}")
    return 0


def _to_tfrecord(args):
    app = _configured_app(args)
    from mmkeras.app import prepare_data
    from mmkeras.data.tfrecord import write_tfrecords

    work_dir = args.work_dir or os.path.join("runs", app.name)
    _, splits = prepare_data(app, args.data, work_dir, args.examples, args.seed)
    for name, part in zip(("train", "validation", "test"), splits):
        paths = write_tfrecords(part, app.specs(), args.out, num_shards=args.shards, prefix=name)
        print(f"{name}: {len(part)} examples in {len(paths)} shard(s) under {args.out}")


if __name__ == "__main__":
    sys.exit(main())
