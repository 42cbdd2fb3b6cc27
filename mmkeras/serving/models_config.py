"""TF Serving's `models.config`: the models served, their versions and labels.

A `ModelServerConfig` text proto with a `model_config_list`: per model its
name, base path, version policy (latest, all, or specific versions) and
version labels (`stable`, `canary`). `mmkeras serving-config` writes it;
`tensorflow_model_server` and the dev server (`mmkeras serve`) read it.
"""

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path


@dataclass
class ServedModel:
    """One model of a TF Serving `model_config_list`.

    Args:
        name: the name clients call (`/v1/models/<name>`).
        base_path: the folder holding the version folders, as the server
            sees it (e.g. `/models/<name>` in the Docker image).
        versions: `"latest"` (the newest `num_latest` versions), `"all"`, or
            a list of version numbers to serve.
        num_latest: how many of the newest versions `"latest"` serves.
        labels: version labels, e.g. `{"stable": 1, "canary": 2}`; each
            labelled version must be one that is served.

    Example:

    >>> model = ServedModel("sentiment", "/models/sentiment", versions=[2, 1],
    ...                     labels={"stable": 1, "canary": 2})
    >>> model.versions
    [1, 2]
    """

    name: str
    base_path: str
    versions: object = "latest"
    num_latest: int = 1
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or "/" in self.name or ":" in self.name:
            raise ValueError(
                f"A model name must be non-empty without '/' or ':', received {self.name!r}."
            )
        if isinstance(self.versions, str):
            if self.versions not in ("latest", "all"):
                raise ValueError(
                    f"Model {self.name!r}: versions must be 'latest', 'all' or a list "
                    f"of version numbers, received {self.versions!r}."
                )
        else:
            self.versions = sorted({int(v) for v in self.versions})
            if not self.versions:
                raise ValueError(f"Model {self.name!r}: the list of versions is empty.")
            missing = {k: v for k, v in self.labels.items() if int(v) not in self.versions}
            if missing:
                raise ValueError(
                    f"Model {self.name!r}: labels {missing} point at versions that are "
                    f"not served ({self.versions}); TF Serving refuses such labels."
                )
        if self.num_latest < 1:
            raise ValueError(
                f"Model {self.name!r}: num_latest must be >= 1, received {self.num_latest}."
            )


def model_server_config(models):
    """Builds the `ModelServerConfig` proto for a list of `ServedModel`.

    >>> config = model_server_config([ServedModel("inspection", "/models/inspection")])
    >>> config.model_config_list.config[0].model_version_policy.latest.num_versions
    1
    """
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    names = set()
    for model in models:
        if model.name in names:
            raise ValueError(f"Model name {model.name!r} appears twice.")
        names.add(model.name)
        entry = config.model_config_list.config.add()
        entry.name = model.name
        entry.base_path = str(model.base_path)
        entry.model_platform = "tensorflow"
        policy = entry.model_version_policy
        if model.versions == "all":
            policy.all.SetInParent()
        elif model.versions == "latest":
            policy.latest.num_versions = model.num_latest
        else:
            policy.specific.versions.extend(model.versions)
        for label, version in sorted(model.labels.items()):
            entry.version_labels[label] = int(version)
    return config


def write_model_config(path, models):
    """Writes a TF Serving `models.config` (text proto) for `ServedModel`s.

    Args:
        path: file to write.
        models: list of `ServedModel`.

    Returns:
        the written path.

    Example:

    >>> import tempfile
    >>> path = write_model_config(Path(tempfile.mkdtemp()) / "models.config", [
    ...     ServedModel("sentiment", "/models/sentiment", versions=[1, 2],
    ...                 labels={"stable": 1, "canary": 2}),
    ...     ServedModel("inspection", "/models/inspection"),
    ... ])
    >>> [entry.name for entry in read_model_config(path).model_config_list.config]
    ['sentiment', 'inspection']
    """
    from google.protobuf import text_format

    text = text_format.MessageToString(model_server_config(models))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read_model_config(path):
    """Parses a `models.config` file into a `ModelServerConfig` proto.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "models.config"
    >>> _ = path.write_text('model_config_list { config { name: "a" base_path: "/models/a" } }')
    >>> read_model_config(path).model_config_list.config[0].base_path
    '/models/a'
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(Path(path).read_text(), config)
    except text_format.ParseError as error:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {error}") from None
    return config
