"""The `app.yaml` schema: one typed section per block of the file.

An app file holds `name`, `description`, `inputs` (modality specs, checked by
the modalities themselves in `App.specs`) and five sections whose every key is
a field below, with its type and default (README "App configuration" lists them
all). The whole file is checked when it is read: an unknown key, a value of the
wrong type or out of range is an error naming the file and the key's path, so
a typo never falls back to a default unnoticed. `model.fusion` is read from the
fusion registry when a file is checked (a fusion registered from user code is
accepted) and `model.fusion_options` against that fusion's constructor. An
optional `tune:` section says what `mmkeras tune` searches (`tune_space.py`);
every value it may try is checked here too.

Example:
>>> app = {"data": {"label_column": "y", "labels": ["a", "b"]},
...        "inputs": [{"kind": "text", "name": "note"}], "training": {"epochs": 3}}
>>> parse_config(app, "app.yaml")["training"].epochs
3
>>> parse_config({**app, "training": {"patiense": 3}}, "app.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: app.yaml: training.patiense: unknown key (did you mean 'patience'?); allowed: epochs, ...
>>> parse_config({**app, "model": {"fusion": "gated", "fusion_options": {"hiden_dim": 64}}}, "app.yaml")
Traceback (most recent call last):
...
ValueError: app.yaml: model.fusion_options.hiden_dim: unknown key (did you mean 'hidden_dim'?); GatedFusion takes: hidden_dim
"""

import collections
import dataclasses
import json
import math
import os
import types
import typing
from typing import Literal

import yaml

from mmkeras.headlines import check_headline
from mmkeras.registry import did_you_mean
from mmkeras.serving.op_check import DEFAULT_SERVING_VERSION
from mmkeras.tune_space import candidate_values, parse_space

# A value condition beyond the field's type.
Check = collections.namedtuple("Check", ["expected", "holds"])
POSITIVE = Check("a value > 0", lambda x: x > 0)
NON_NEGATIVE = Check("a value >= 0", lambda x: x >= 0)
FRACTION = Check("a fraction between 0 and 1 (exclusive)", lambda x: 0 < x < 1)
RATE = Check("a rate in [0, 1)", lambda x: 0 <= x < 1)
NAMES = Check("a non-empty list of distinct names", lambda x: len(x) > 0 and len(set(x)) == len(x))


def _setting(default=dataclasses.MISSING, check=None):
    """A field whose value must also pass `check`; no default: a required key."""
    return dataclasses.field(default=default, metadata={"check": check})


# === Sections ===
# kw_only: required and defaulted keys can stand in the order the README lists them.
@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """`data:` where the examples come from and what their labels are."""

    manifest: str | None = None  # CSV/JSONL, relative to the app folder; None: demo data
    demo_examples: int = _setting(600, POSITIVE)  # demo data size
    label_column: str = _setting()  # the manifest column holding class names
    labels: list[str] = _setting(check=NAMES)  # the class names, in output order
    multi_label: bool = False  # labels are |-separated sets (sigmoid head)
    threshold: float = _setting(0.5, FRACTION)  # multi-label decision threshold
    validation_fraction: float = _setting(0.15, FRACTION)  # random split, when no split column
    test_fraction: float = _setting(0.15, FRACTION)  # random split, when no split column
    on_error: Literal["raise", "skip"] = "raise"  # skip: drop bad rows and report them
    allow_outside_paths: bool = False  # file paths may leave the manifest's folder (abs, .., URLs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """`model:` how the modalities are fused (arguments of `build_model`)."""

    fusion: str = "concat"  # a key of mmkeras.fusion.FUSIONS, read when the file is checked
    projection_dim: int = _setting(128, POSITIVE)  # width every modality is projected to
    modality_dropout: float = _setting(0.1, RATE)  # chance of hiding a modality in training
    fusion_options: dict = dataclasses.field(default_factory=dict)  # checked against the fusion's constructor
    feature_norm: bool = True  # batch-normalise each encoder's pooled features before projection
    auxiliary_heads: bool = False  # a classifier per modality beside the fused one


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """`training:` how the fused model and the baselines are fitted."""

    epochs: int = _setting(40, POSITIVE)  # epochs at most
    batch_size: int = _setting(32, POSITIVE)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    learning_rate: float = _setting(2e-3, POSITIVE)  # peak rate
    lr_schedule: Literal["cosine", "constant"] = "cosine"  # warm-up + cosine decay, or none
    label_smoothing: float = _setting(0.0, RATE)
    class_weights: bool = True  # inverse-frequency weights (single-label)
    patience: int = _setting(20, NON_NEGATIVE)  # epochs without a better validation score
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    strategy: Literal["default", "mirrored", "multi_worker", "tpu"] = "default"
    jit_compile: bool = False  # XLA for the training step
    deterministic: bool = False  # TF op determinism: the same seed trains the same weights
    clipnorm: float | None = _setting(1.0, POSITIVE)  # global gradient norm limit; None: off
    auxiliary_loss_weight: float = _setting(0.3, NON_NEGATIVE)  # loss weight of each auxiliary head


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """`evaluation:` what the report leads with."""

    headline: str | None = None  # a report metric; None: accuracy (roc_auc_macro multi-label)
    normal_label: str | None = None  # the "no finding" class, for miss and false-alarm rates


# A LiteRT file's quantization: float32 ("none"), float16 weights, or int8 weights and activations.
LITERT_QUANTIZATIONS = ("none", "float16", "int8")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """`export:` where and for which TF Serving release the model is exported, and whether for devices."""

    base_dir: str | None = None  # SavedModel folder; None: savedmodels/<app>
    serving_version: str = DEFAULT_SERVING_VERSION  # the TF Serving release whose ops are checked
    # Also a LiteRT file for devices (mmkeras.litert), in <base_dir>/litert/<version>/:
    # its quantization (int8 calibrates on the training rows); null: none written.
    litert: Literal[LITERT_QUANTIZATIONS] | None = None


SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig,
            "evaluation": EvaluationConfig, "export": ExportConfig}
TOP_LEVEL = ("name", "description", "inputs", *SECTIONS, "tune")


# === Parsing ===
def read_app_file(path):
    """`(contents, file)` of an app folder (its `app.yaml`) or an app file: the
    YAML mapping, read without importing TensorFlow (so that `mmkeras` answers a
    missing file or a YAML error at once)."""
    path = os.fspath(path)
    file = os.path.join(path, "app.yaml") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"No app config at {file}")
    with open(file) as f:
        return yaml.safe_load(f) or {}, file


def check_file(path, settings=()):
    """Reads and checks an app file and `--set` settings, importing Keras only
    for the last check (the fusion, whose options its constructor defines): a
    missing file, a YAML error, an unknown key or a bad value is answered
    before TensorFlow loads. The inputs are checked by their kinds later
    (`App.specs`)."""
    contents, file = read_app_file(path)
    sections = parse_config(contents, file, check_fusion=False)
    sections = apply_settings({name: sections[name] for name in SECTIONS}, settings, file, check_fusion=False)
    _check_fusion(sections["model"], f"{file} (with {' '.join(settings)})" if settings else file)


def parse_config(config, file, check_fusion=True):
    """The contents of an app file (`yaml.safe_load`ed), checked and typed.

    Args:
        config: the file's top-level mapping.
        file: the file's path, for error messages.

    Returns:
        A dict: `name` (None when absent), `description`, `inputs` (the list
        of spec mappings, each with `kind` and `name`) and one typed section
        object per key of `SECTIONS`.

    Example:
    >>> sections = parse_config({"data": {"label_column": "y", "labels": ["a", "b"]},
    ...                          "inputs": [{"kind": "text", "name": "note"}]}, "app.yaml")
    >>> sections["data"].labels, sections["training"].epochs, sections["model"].fusion
    (['a', 'b'], 40, 'concat')
    """
    if not isinstance(config, dict):
        raise ValueError(f"{file}: expected a mapping of sections. Received: {config!r}")
    for key in config:
        if key not in TOP_LEVEL:
            raise _unknown_key(file, str(key), TOP_LEVEL)
    for key in ("data", "inputs"):
        if not config.get(key):
            raise ValueError(f"{file}: {key}: a required section")
    for key in ("name", "description"):
        if not isinstance(config.get(key, ""), (str, type(None))):
            raise ValueError(f"{file}: {key}: expected a string. Received: {config[key]!r}")
    # A section left empty (`model:`) reads as null: all its defaults.
    sections = {name: parse_section(name, {} if config.get(name) is None else config[name], file)
                for name in SECTIONS}
    _check_across(sections, file, check_fusion)
    inputs = config["inputs"]
    if not isinstance(inputs, list):
        raise ValueError(f"{file}: inputs: expected a list of modality specs. Received: {inputs!r}")
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict) or "kind" not in spec or "name" not in spec:
            raise ValueError(f"{file}: inputs[{i}] needs `kind` and `name`. Received: {spec!r}")
    tune = None if config.get("tune") is None else check_space(parse_space(config["tune"], file), sections, file)
    return {"name": config.get("name"), "description": config.get("description") or "",
            "inputs": inputs, **sections, "tune": tune}


def check_space(space, sections, file):
    """`space` (of `tune_space.parse_space`), each value a path may take checked
    as a `--set` of it would be."""
    for path, entry in space.items():
        for value in candidate_values(entry):
            try:
                apply_settings(sections, [f"{path}={json.dumps(value)}"], file)
            except ValueError as e:
                raise ValueError(f"{file}: tune.{path}: the value {value!r} is refused: {e}") from None
    return space


def parse_section(name, values, where):
    """One section's mapping as its typed object (`SECTIONS[name]`).

    Args:
        name: the section, a key of `SECTIONS`.
        values: the mapping the file holds for it.
        where: the file (or setting) the values come from, for error messages.

    Example:
    >>> parse_section("training", {"epochs": 5, "learning_rate": "2e-3"}, "app.yaml").learning_rate
    0.002
    >>> parse_section("training", {"epochs": "five"}, "app.yaml")
    Traceback (most recent call last):
    ...
    ValueError: app.yaml: training.epochs: expected an integer. Received: 'five'
    """
    if not isinstance(values, dict):
        raise ValueError(f"{where}: {name}: expected a mapping of keys to values. Received: {values!r}")
    fields = {field.name: field for field in dataclasses.fields(SECTIONS[name])}
    for key in values:
        if key not in fields:
            raise _unknown_key(where, f"{name}.{key}", fields)
    for key, field in fields.items():
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and key not in values:
            raise ValueError(f"{where}: {name}.{key}: a required key")
    return SECTIONS[name](**{key: _checked(value, fields[key], f"{where}: {name}.{key}")
                             for key, value in values.items()})


def apply_settings(sections, settings, file, check_fusion=True):
    """`sections` with `section.key=value` settings (the CLI's `--set`) applied.

    Values are read as YAML (`3` is an int, `[a, b]` a list, `null` None) and
    checked as the file's own values are.

    Example:
    >>> sections = parse_config({"data": {"label_column": "y", "labels": ["a", "b"]},
    ...                          "inputs": [{"kind": "text", "name": "note"}]}, "app.yaml")
    >>> apply_settings(sections, ["training.clipnorm=null"], "app.yaml")["training"].clipnorm is None
    True
    """
    sections = dict(sections)
    for setting in settings:
        key, equals, value = setting.partition("=")
        section, dot, name = key.strip().partition(".")
        if not equals or not dot or not name:
            raise ValueError(f"Expected a setting as section.key=value; received {setting!r}")
        if section not in SECTIONS:
            raise ValueError(f"Cannot set {setting!r}: settable sections are {list(SECTIONS)}")
        values = {**dataclasses.asdict(sections[section]), name: yaml.safe_load(value)}
        sections[section] = parse_section(section, values, f"{file} (--set {setting})")
    _check_across(sections, f"{file} (with {' '.join(settings)})" if settings else file, check_fusion)
    return sections


def _check_across(sections, where, check_fusion=True):
    """Conditions between keys, which no single value shows."""
    data, evaluation = sections["data"], sections["evaluation"]
    if data.validation_fraction + data.test_fraction >= 1:
        raise ValueError(f"{where}: data.validation_fraction + data.test_fraction must be < 1 (the rest "
                         f"trains). Received: {data.validation_fraction} + {data.test_fraction}")
    if evaluation.normal_label is not None and data.multi_label:
        raise ValueError(f"{where}: evaluation.normal_label: applies to single-label apps (a multi-label "
                         f"example with no label is the normal case); remove it or set data.multi_label: "
                         f"false. Received: {evaluation.normal_label!r}")
    if evaluation.normal_label is not None and evaluation.normal_label not in data.labels:
        raise ValueError(f"{where}: evaluation.normal_label: expected one of data.labels {data.labels}"
                         f"{did_you_mean(evaluation.normal_label, data.labels)}. "
                         f"Received: {evaluation.normal_label!r}")
    if evaluation.headline is not None:
        try:
            check_headline(evaluation.headline, data.multi_label, evaluation.normal_label)
        except ValueError as e:
            raise ValueError(f"{where}: evaluation.headline: {e}") from None
    if check_fusion:
        _check_fusion(sections["model"], where)


def _check_fusion(model, where):
    """`model.fusion` against the registry as it is now, not as it was at import
    (user code may have registered a fusion), and `model.fusion_options` against
    that layer's constructor."""
    from mmkeras import fusion as fusion_lib  # Keras: only once the rest of the file is checked

    fusions = fusion_lib.FUSIONS
    if model.fusion not in fusions:
        raise ValueError(f"{where}: model.fusion: expected one of {list(fusions)}"
                         f"{did_you_mean(model.fusion, fusions)}. Received: {model.fusion!r}")
    fusion_lib.check_options(fusions[model.fusion], model.fusion_options, f"{where}: model.fusion_options")


def _unknown_key(where, path, allowed):
    hint = did_you_mean(path.rpartition(".")[2], allowed)
    return ValueError(f"{where}: {path}: unknown key{hint}; allowed: {', '.join(allowed)}")


def _checked(value, field, where):
    value = _typed(value, field.type, where)
    check = field.metadata.get("check")  # plain fields have none
    if check and value is not None and not check.holds(value):
        raise ValueError(f"{where}: expected {check.expected}. Received: {value!r}")
    return value


def _typed(value, kind, where):
    """`value` as the annotation `kind` asks for it, else an error naming `where`."""
    def mismatch(expected):
        return ValueError(f"{where}: expected {expected}. Received: {value!r}")

    if typing.get_origin(kind) in (types.UnionType, typing.Union):  # `X | None`: null is allowed
        if value is None:
            return None
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is Literal:
        if value not in typing.get_args(kind):
            raise mismatch(f"one of {list(typing.get_args(kind))}")
        return value
    if kind is float:
        # YAML 1.1 reads `1e-3` (no dot) as a string: a number written so is still a number.
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise mismatch("a finite number")
        return number
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise mismatch("an integer")
    if kind == list[str] and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise mismatch("a list of strings")
    expected = {bool: "true or false", str: "a string", dict: "a mapping"}
    if kind in expected and not isinstance(value, kind):
        raise mismatch(expected[kind])
    return value


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None
