"""Tests of the TF Serving configuration writers and `mmkeras serving-config`."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from mmkeras.serving import config as config_module
from mmkeras.serving.config import ServedModel
from mmkeras.serving.config import docker_command
from mmkeras.serving.config import model_server_command
from mmkeras.serving.config import placeholder_inputs
from mmkeras.serving.config import read_batching_parameters
from mmkeras.serving.config import read_model_config
from mmkeras.serving.config import write_batching_parameters
from mmkeras.serving.config import write_example_request
from mmkeras.serving.config import write_model_config
from mmkeras.serving.dev_server import DevServer
from mmkeras.serving.dev_server import read_model_configs
from mmkeras.serving.warmup import write_warmup_requests

# The test SavedModels and helpers live with the dev server tests.
sys.path.insert(0, str(Path(__file__).parent))
from test_serving_dev_server import example  # noqa: E402
from test_serving_dev_server import http  # noqa: E402
from test_serving_dev_server import local_predict  # noqa: E402
from test_serving_dev_server import png_bytes  # noqa: E402
from test_serving_dev_server import write_test_savedmodel  # noqa: E402


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    write_test_savedmodel(root / "tiny" / "1", seed=1)
    version_dir = write_test_savedmodel(root / "tiny" / "2", seed=2)
    write_warmup_requests(version_dir, "tiny", [example(70, review="warm up")])
    write_test_savedmodel(root / "sensor" / "1", seed=3, kind="sensor")
    return root


def test_models_config_parses_back_with_text_format(tmp_path):
    path = write_model_config(
        tmp_path / "models.config",
        [
            ServedModel("shop", "/models/shop", versions=[1, 2], labels={"stable": 1, "canary": 2}),
            ServedModel("sensor", "/models/sensor", num_latest=2),
            ServedModel("all", "/models/all", versions="all"),
        ],
    )
    parsed = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    assert parsed == read_model_config(path)
    shop, sensor, every = parsed.model_config_list.config
    assert (shop.name, shop.base_path, shop.model_platform) == (
        "shop",
        "/models/shop",
        "tensorflow",
    )
    assert list(shop.model_version_policy.specific.versions) == [1, 2]
    assert dict(shop.version_labels) == {"stable": 1, "canary": 2}
    assert sensor.model_version_policy.latest.num_versions == 2
    assert every.model_version_policy.WhichOneof("policy_choice") == "all"
    # The dev server reads the same file.
    models = read_model_configs(path)
    assert models["shop"][1:] == (("specific", frozenset({1, 2})), {"stable": 1, "canary": 2})
    assert models["sensor"][1] == ("latest", 2)


def test_served_model_rejects_what_tf_serving_refuses():
    with pytest.raises(ValueError, match="not served"):
        ServedModel("shop", "/models/shop", versions=[1], labels={"canary": 2})
    with pytest.raises(ValueError, match="'latest', 'all'"):
        ServedModel("shop", "/models/shop", versions="newest")
    with pytest.raises(ValueError, match="appears twice"):
        write_model_config("unused", [ServedModel("a", "/m/a"), ServedModel("a", "/m/b")])


def test_batching_parameters_round_trip(tmp_path):
    path = write_batching_parameters(
        tmp_path / "batching_parameters.txt", max_batch_size=16, allowed_batch_sizes=[4, 8, 16]
    )
    text = path.read_text()
    assert "max_batch_size {\n  value: 16\n}" in text
    params = read_batching_parameters(path)
    assert params.max_batch_size.value == 16
    assert params.batch_timeout_micros.value == 2000
    assert params.num_batch_threads.value == 4
    assert list(params.allowed_batch_sizes) == [4, 8, 16]
    with pytest.raises(ValueError, match="end at max_batch_size"):
        write_batching_parameters(
            tmp_path / "bad.txt", max_batch_size=16, allowed_batch_sizes=[4, 8]
        )


def test_example_requests_are_answered_by_the_server(tmp_path, export_root):
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes(99))
    request = write_example_request(
        tmp_path / "tiny.request.json", {"image": image, "review": "nice", "readings": [1, 2, 3]}
    )
    body = json.loads(request.read_text())
    assert body["signature_name"] == "serving_default" and "b64" in body["instances"][0]["image"]
    placeholders = placeholder_inputs(export_root / "sensor" / "1")
    assert placeholders == {"readings": [0.0, 0.0, 0.0]}
    sensor_request = write_example_request(tmp_path / "sensor.request.json", placeholders)
    with DevServer(export_root, rest_port=0, grpc_port=None, poll_seconds=0) as server:
        status, answer = http(
            "POST", f"{server.rest_url}/v1/models/tiny:predict", raw=request.read_bytes()
        )
        assert status == 200, answer
        expected = local_predict(
            export_root / "tiny" / "2",
            [{"image": png_bytes(99), "review": "nice", "readings": [1.0, 2.0, 3.0]}],
        )
        np.testing.assert_allclose(
            answer["predictions"][0]["probabilities"], expected["probabilities"][0], rtol=1e-6
        )
        status, answer = http(
            "POST", f"{server.rest_url}/v1/models/sensor:predict", raw=sensor_request.read_bytes()
        )
        assert status == 200 and np.allclose(answer["predictions"], [[0.5, 0.5]])


def test_command_lines_have_tf_serving_flags(tmp_path):
    command = model_server_command(
        "/cfg/models.config", batching_parameters_file="/cfg/b.txt", rest_port=9501, grpc_port=9500
    )
    assert command[0] == "tensorflow_model_server"
    for flag in [
        "--port=9500",
        "--rest_api_port=9501",
        "--model_config_file=/cfg/models.config",
        "--enable_batching=true",
        "--batching_parameters_file=/cfg/b.txt",
        "--model_config_file_poll_wait_seconds=60",
    ]:
        assert flag in command
    assert not any("batching" in flag for flag in model_server_command("/cfg/models.config"))
    docker = docker_command(tmp_path / "exports", tmp_path / "cfg", rest_port=9501)
    assert docker[:3] == ["docker", "run", "--rm"]
    assert "9501:8501" in docker and "8500:8500" in docker
    assert f"type=bind,source={(tmp_path / 'exports').resolve()},target=/models,readonly" in docker
    image_at = docker.index(config_module.DEFAULT_IMAGE)
    assert "--model_config_file=/config/models.config" in docker[image_at:]
    assert "--batching_parameters_file=/config/batching_parameters.txt" in docker[image_at:]


def test_serving_config_main_writes_files_the_dev_server_uses(tmp_path, export_root, capsys):
    out = tmp_path / "serving"
    code = config_module.main(
        [
            str(export_root),
            "--out",
            str(out),
            "--label",
            "tiny:stable=1",
            "--label",
            "tiny:canary=2",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "docker run" in printed and "--model_config_file=/config/models.config" in printed
    config = read_model_config(out / "models.config")
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries["tiny"].base_path == "/models/tiny"
    assert list(entries["tiny"].model_version_policy.specific.versions) == [1, 2]
    assert dict(entries["tiny"].version_labels) == {"stable": 1, "canary": 2}
    assert entries["sensor"].model_version_policy.latest.num_versions == 1
    assert read_batching_parameters(out / "batching_parameters.txt").max_batch_size.value == 32
    # tiny's request comes from its warmup file, sensor's from its signature.
    tiny_request = json.loads((out / "tiny.request.json").read_text())
    assert tiny_request["instances"][0]["review"] == "warm up"
    assert "b64" in tiny_request["instances"][0]["image"]

    with DevServer(
        export_root,
        model_config_file=out / "models.config",
        rest_port=0,
        grpc_port=None,
        poll_seconds=0,
    ) as server:
        for name, path in [("tiny/labels/canary", "tiny"), ("sensor", "sensor")]:
            status, answer = http(
                "POST",
                f"{server.rest_url}/v1/models/{name}:predict",
                raw=(out / f"{path}.request.json").read_bytes(),
            )
            assert status == 200, answer
        expected = local_predict(export_root / "tiny" / "2", [example(70, review="warm up")])
        status, answer = http(
            "POST",
            f"{server.rest_url}/v1/models/tiny/labels/canary:predict",
            raw=(out / "tiny.request.json").read_bytes(),
        )
        np.testing.assert_allclose(
            answer["predictions"][0]["probabilities"], expected["probabilities"][0], rtol=1e-6
        )


def test_docker_image_is_the_release_the_exports_were_checked_for(tmp_path, export_root, capsys):
    # SavedModels without mmkeras metadata count as needing the newest release.
    assert config_module.serving_image(export_root, ["tiny", "sensor"]) == "tensorflow/serving:2.20.0"
    older = tmp_path / "older"
    for name, target in [("a", "2.17"), ("b", "2.19")]:
        version_dir = write_test_savedmodel(older / name / "1", seed=1)
        (version_dir / "assets.extra").mkdir(exist_ok=True)
        (version_dir / "assets.extra" / "mmkeras.json").write_text(json.dumps({"serving_version": target}))
    assert config_module.serving_image(older, ["a"]) == "tensorflow/serving:2.17.0"
    assert config_module.serving_image(older, ["a", "b"]) == "tensorflow/serving:2.19.0"
    out = tmp_path / "serving"
    assert config_module.main([str(older), "--out", str(out)]) == 0
    assert "tensorflow/serving:2.19.0 --model_config_file" in capsys.readouterr().out


def test_serving_config_main_rejects_unknown_models(tmp_path, export_root, capsys):
    with pytest.raises(SystemExit):
        config_module.main([str(export_root), "--out", str(tmp_path), "--model", "nope"])
    assert "No exported versions for ['nope']" in capsys.readouterr().err
