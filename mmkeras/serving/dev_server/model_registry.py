"""The models served and their versions: discovery, version policy, polling.

Models are `<base>/<model_name>/<version>/` SavedModels, or the models of a
`models.config` file. Each poll re-reads the config when it changed, then
loads the versions the policy wants (latest by default, or all / specific
ones) among the complete SavedModels, and unloads the others once a wanted
version serves, as TF Serving does. Version labels (`stable`, `canary`) come
from `models.config`.
"""

import logging
import threading
from pathlib import Path

from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import get_model_status_pb2

from mmkeras.savedmodel import is_version_name
from mmkeras.savedmodel import version_dirs
from mmkeras.serving.dev_server.request_errors import RequestError
from mmkeras.serving.dev_server.request_errors import error_code_and_message
from mmkeras.serving.dev_server.request_errors import invalid_argument
from mmkeras.serving.dev_server.servable import Servable
from mmkeras.serving.dev_server.servable import run_warmup
from mmkeras.serving.models_config import read_model_config

_LOG = logging.getLogger("mmkeras.serving")


# === Models and version policy ===


class _Model:
    """A served model: where its versions live, which to serve, its labels."""

    def __init__(self, name, base_path, policy=("latest", 1), labels=None):
        self.name = name
        self.base_path = Path(base_path)
        self.policy = policy
        self.labels = dict(labels or {})
        self.available = {}  # version -> Servable
        self.states = {}  # version -> (state, error_code, error_message)
        self.failed = {}  # version -> file stamp of the failed load
        self.incomplete = set()  # integer folders without a complete SavedModel

    def wanted_versions(self, complete):
        """The versions the policy serves among the complete ones."""
        kind, value = self.policy
        if kind == "all":
            return set(complete)
        if kind == "specific":
            return set(complete) & set(value)
        return set(sorted(complete)[-value:])


def _policy_from_proto(config):
    choice = config.model_version_policy.WhichOneof("policy_choice")
    policy = config.model_version_policy
    if choice == "all":
        return ("all", None)
    if choice == "specific":
        return ("specific", frozenset(policy.specific.versions))
    num = policy.latest.num_versions if choice == "latest" else 0
    return ("latest", num or 1)


def _resolve_base_path(base_path, config_file, models_root):
    """Finds a config's base_path on this machine.

    The same models.config serves in a container (`/models/<name>`) and here:
    a path that does not exist is looked up relative to the config file, then
    as `<models_root>/<last component>`.
    """
    path = Path(base_path)
    candidates = [path]
    if not path.is_absolute():
        candidates.append(Path(config_file).parent / path)
    if models_root is not None:
        candidates.append(Path(models_root) / path.name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def read_model_configs(config_file, models_root=None):
    """Reads a TF Serving `models.config` into `{name: (base, policy, labels)}`.

    Args:
        config_file: text proto `ModelServerConfig` with a
            `model_config_list`.
        models_root: optional folder where a base_path that does not exist
            here is looked up by its last component.

    Returns:
        dict of model name to `(base_path, policy, labels)`.

    Example:

    >>> import tempfile
    >>> config_file = Path(tempfile.mkdtemp()) / "models.config"
    >>> _ = config_file.write_text(
    ...     'model_config_list { config { name: "shop" base_path: "/models/shop" '
    ...     'model_version_policy { specific { versions: 1 versions: 2 } } '
    ...     'version_labels { key: "stable" value: 1 } } }')
    >>> base, policy, labels = read_model_configs(config_file, models_root="savedmodels")["shop"]
    >>> base.as_posix(), policy, labels
    ('savedmodels/shop', ('specific', frozenset({1, 2})), {'stable': 1})
    """
    config = read_model_config(config_file)
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(
            f"{config_file}: expected a model_config_list, received "
            f"{config.WhichOneof('config') or 'an empty config'}."
        )
    models = {}
    for index, entry in enumerate(config.model_config_list.config):
        where = f"{config_file}: config #{index + 1}"
        if not entry.name or not entry.base_path:
            raise ValueError(f"{where}: name and base_path are required.")
        if entry.name in models:
            raise ValueError(f"{where}: model name {entry.name!r} appears twice.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"{where}: model_platform must be 'tensorflow', received "
                f"{entry.model_platform!r}."
            )
        base = _resolve_base_path(entry.base_path, config_file, models_root)
        models[entry.name] = (base, _policy_from_proto(entry), dict(entry.version_labels))
    return models


# === The registry ===


class ModelRegistry:
    """The models served, their loaded versions, and the polling of folders.

    Args:
        base_path: folder of models, `<base>/<model_name>/<version>/`, or one
            model's folder (`<base>/<version>/`). Ignored for the models of
            `model_config_file`, except to find their base paths.
        model_config_file: optional TF Serving `models.config`.

    Example:

    >>> import tempfile
    >>> registry = ModelRegistry(tempfile.mkdtemp())
    >>> registry.refresh()
    >>> registry.model_names()
    []
    """

    def __init__(self, base_path=None, model_config_file=None):
        if base_path is None and model_config_file is None:
            raise ValueError("Give a base path, a model config file, or both.")
        self.base_path = Path(base_path) if base_path is not None else None
        self.model_config_file = model_config_file
        self._models = {}
        self._config_stamp = None
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    # --- Polling ---

    def refresh(self):
        """One poll: re-reads the config, loads new versions, unloads old ones."""
        with self._refresh_lock:
            self._update_models()
            for model in list(self._models.values()):
                self._update_versions(model)

    def _update_models(self):
        if self.model_config_file is not None:
            stamp = _file_stamp_of(self.model_config_file)
            if stamp == self._config_stamp:
                return
            try:
                configs = read_model_configs(self.model_config_file, self.base_path)
            except (OSError, ValueError) as error:
                if self._config_stamp is None:
                    raise
                _LOG.error("Keeping the previous model config: %s", error)
                return
            self._config_stamp = stamp
        else:
            configs = self._discover_models()
        with self._lock:
            for name, (base, policy, labels) in configs.items():
                model = self._models.get(name)
                if model is None:
                    self._models[name] = _Model(name, base, policy, labels)
                    _LOG.info("Serving model %s from %s", name, base)
                else:
                    model.base_path, model.policy, model.labels = base, policy, labels
            for name in set(self._models) - set(configs):
                # Versions of a model dropped from the config get unloaded.
                self._models[name].policy = ("specific", frozenset())

    def _discover_models(self):
        models = {
            name: (model.base_path, model.policy, model.labels)
            for name, model in self._models.items()
        }
        base = self.base_path
        # A folder of integer-named folders is one model's folder.
        if any(is_version_name(p.name) for p in _subdirs(base)):
            models.setdefault(base.resolve().name, (base, ("latest", 1), {}))
            return models
        for child in _subdirs(base):
            if not child.name.startswith(".") and ":" not in child.name:
                models.setdefault(child.name, (child, ("latest", 1), {}))
        return models

    def _update_versions(self, model):
        complete = version_dirs(model.base_path)
        self._note_incomplete(model, complete)
        wanted = model.wanted_versions(complete)
        for version in sorted(wanted - set(model.available)):
            self._load(model, version, complete[version])
        # Availability first: old versions go only once a wanted one serves.
        if not wanted or wanted & set(model.available):
            for version in set(model.available) - wanted:
                with self._lock:
                    del model.available[version]
                    model.states[version] = ("END", "OK", "")
                _LOG.info("Unloaded model %s version %d", model.name, version)

    def _note_incomplete(self, model, complete):
        # TF Serving would try (and fail) to load a version folder whose files
        # are not all there; this server waits, as for a copy in progress,
        # and says so once per folder rather than staying silent.
        folders = {int(p.name) for p in _subdirs(model.base_path) if is_version_name(p.name)}
        incomplete = folders - set(complete)
        for version in sorted(incomplete - model.incomplete):
            _LOG.warning(
                "Model %s version %d: %s has no saved_model.pb or no variables/variables.index "
                "yet; waiting for it to be complete.",
                model.name, version, model.base_path / str(version),
            )
        model.incomplete = incomplete

    def _load(self, model, version, path):
        stamp = _file_stamp(path)
        if model.failed.get(version) == stamp:
            return
        with self._lock:
            model.states[version] = ("LOADING", "OK", "")
        try:
            servable = Servable(model.name, version, path)
            run_warmup(servable)
        except Exception as error:  # A bad version must not stop the server.
            code, message = error_code_and_message(error)
            model.failed[version] = stamp
            with self._lock:
                model.states[version] = ("END", code, message)
            _LOG.error("Failed to load model %s version %d: %s", model.name, version, message)
            return
        model.failed.pop(version, None)
        with self._lock:
            model.available[version] = servable
            model.states[version] = ("AVAILABLE", "OK", "")
        _LOG.info("Loaded model %s version %d from %s", model.name, version, path)

    # --- Lookups ---

    def model_names(self):
        with self._lock:
            return sorted(self._models)

    def available_versions(self, name):
        with self._lock:
            model = self._models.get(name)
            return sorted(model.available) if model else []

    def servable(self, name, version=None, label=None):
        """The loaded version a request asks for, or a RequestError."""
        with self._lock:
            model = self._models.get(name)
            if label:
                if model is None or label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            available = model.available if model else {}
            if version is None:
                if not available:
                    raise RequestError(
                        "NOT_FOUND", f"Servable not found for request: Latest({name})"
                    )
                return available[max(available)]
            if version not in available:
                raise RequestError(
                    "NOT_FOUND",
                    f"Servable not found for request: Specific({name}, {version})",
                )
            return available[version]

    def status(self, name, version=None, label=None):
        """A `GetModelStatusResponse` for a model, or one version of it."""
        with self._lock:
            model = self._models.get(name)
            states = dict(model.states) if model else {}
            if label:
                if model is None or label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
        if version is not None:
            if version not in states:
                raise RequestError("NOT_FOUND", f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        if not states:
            raise RequestError("NOT_FOUND", f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(states, reverse=True):
            state, code, message = states[number]
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.SetInParent()
            entry.status.error_code = error_codes_pb2.Code.Value(code)
            entry.status.error_message = message
        return response


def _subdirs(path):
    try:
        return [p for p in Path(path).iterdir() if p.is_dir()]
    except OSError:
        return []


def _file_stamp_of(path):
    stat = Path(path).stat()
    return (stat.st_mtime_ns, stat.st_size)


def _file_stamp(version_dir):
    """Changes when a version folder is rewritten, so a failed load retries."""
    stats = []
    for name in ("saved_model.pb", "saved_model.pbtxt", "variables/variables.index"):
        path = Path(version_dir) / name
        if path.is_file():
            stat = path.stat()
            stats.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(stats)
