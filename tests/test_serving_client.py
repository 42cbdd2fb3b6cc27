"""Tests of the serving client over REST and gRPC, against the dev server."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mmkeras.serving import client as client_module
from mmkeras.serving.client import Client
from mmkeras.serving.client import ServingError
from mmkeras.serving.client import encode_examples
from mmkeras.serving.client import parse_input_arg
from mmkeras.serving.client import rest_instances
from mmkeras.serving.client import tensor_protos
from mmkeras.serving.dev_server import DevServer

# The test SavedModels and helpers live with the dev server tests.
sys.path.insert(0, str(Path(__file__).parent))
from test_serving_dev_server import LABELS  # noqa: E402
from test_serving_dev_server import local_predict  # noqa: E402
from test_serving_dev_server import png_bytes  # noqa: E402
from test_serving_dev_server import write_test_savedmodel  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("client_models")
    write_test_savedmodel(base / "tiny" / "1", seed=1)
    write_test_savedmodel(base / "tiny" / "2", seed=2)
    write_test_savedmodel(base / "sensor" / "1", seed=3, kind="sensor")
    config = base / "models.config"
    config.write_text(
        "model_config_list { "
        'config { name: "tiny" base_path: "tiny" model_platform: "tensorflow" '
        "model_version_policy { all {} } "
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } '
        'config { name: "sensor" base_path: "sensor" model_platform: "tensorflow" } }'
    )
    return base


@pytest.fixture(scope="module")
def server(models):
    with DevServer(
        models, model_config_file=models / "models.config", rest_port=0, grpc_port=0, poll_seconds=0
    ) as running:
        yield running


@pytest.fixture(scope="module")
def clients(server):
    rest = Client(server.rest_url, "tiny")
    grpc_client = Client(server.grpc_target, "tiny", protocol="grpc")
    yield {"rest": rest, "grpc": grpc_client}
    grpc_client.close()


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "photo.png"
    path.write_bytes(png_bytes(210))
    return path


def _examples(image_file):
    return [
        {"image": image_file, "review": "works great", "readings": [0.5, -1.0, 2.0]},
        {"image": png_bytes(20), "review": "", "readings": [3.0, 0.0, -2.0]},
    ]


def test_rest_and_grpc_match_in_process(clients, models, image_file):
    examples = _examples(image_file)
    reference = [
        {**e, "image": png_bytes(210) if i == 0 else e["image"]} for i, e in enumerate(examples)
    ]
    expected = local_predict(models / "tiny" / "2", reference)
    rest = clients["rest"].predict(examples)
    grpc_results = clients["grpc"].predict(examples)
    assert rest == grpc_results
    assert len(rest) == 2 and set(rest[0]) == {"probabilities", "classes", "scores"}
    np.testing.assert_allclose(
        [r["probabilities"] for r in rest], expected["probabilities"], rtol=1e-6
    )
    assert [r["classes"] for r in rest] == [c.decode() for c in expected["classes"]]
    assert all(isinstance(r["scores"], float) and r["classes"] in LABELS for r in rest)


def test_one_example_and_single_output_model(server, clients, models, image_file):
    one = _examples(image_file)[0]
    assert clients["rest"].predict(one) == clients["grpc"].predict(one)
    assert len(clients["rest"].predict(one)) == 1
    readings = {"readings": [1.0, 2.0, 3.0]}
    expected = local_predict(models / "sensor" / "1", [readings])["probabilities"]
    for protocol, target in [("rest", server.rest_url), ("grpc", server.grpc_target)]:
        with Client(target, "sensor", protocol=protocol) as client:
            (result,) = client.predict(readings)
        assert set(result) == {"probabilities"}
        np.testing.assert_allclose(result["probabilities"], expected[0], rtol=1e-6)


def test_versions_and_labels_select_the_model(server, models, image_file):
    one = _examples(image_file)[0]
    reference = [{**one, "image": png_bytes(210)}]
    for version in (1, 2):
        expected = local_predict(models / "tiny" / str(version), reference)["probabilities"][0]
        label = {1: "stable", 2: "canary"}[version]
        for protocol, target in [("rest", server.rest_url), ("grpc", server.grpc_target)]:
            for selector in ({"version": version}, {"label": label}):
                with Client(target, "tiny", protocol=protocol, **selector) as client:
                    (result,) = client.predict(one)
                np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-6)


def test_metadata_and_status_are_the_same_over_both_protocols(clients):
    rest_metadata = clients["rest"].metadata()
    assert rest_metadata == clients["grpc"].metadata()
    assert rest_metadata["model_spec"]["version"] == "2"
    signature = rest_metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(signature["inputs"]) == {"image", "review", "readings"}
    status = clients["rest"].status()
    assert status == clients["grpc"].status()
    assert [(s["version"], s["state"]) for s in status["model_version_status"]] == [
        ("2", "AVAILABLE"),
        ("1", "AVAILABLE"),
    ]


def test_server_errors_raise_with_the_server_message(server, clients, image_file):
    bad = {**_examples(image_file)[0], "image": b"not an image"}
    for protocol, code in [("rest", 400), ("grpc", "INVALID_ARGUMENT")]:
        with pytest.raises(ServingError, match="Unknown image file format") as error:
            clients[protocol].predict(bad)
        assert error.value.code == code
    for protocol, target, code in [
        ("rest", server.rest_url, 404),
        ("grpc", server.grpc_target, "NOT_FOUND"),
    ]:
        with Client(target, "nope", protocol=protocol) as client:
            with pytest.raises(ServingError, match="Servable not found") as error:
                client.predict(_examples(image_file)[0])
        assert error.value.code == code
    # The server still answers after the errors.
    assert clients["rest"].predict(_examples(image_file)[0])[0]["classes"] in LABELS


def test_inputs_are_checked_before_sending(image_file):
    with pytest.raises(ValueError, match="Example 1: inputs"):
        encode_examples([{"a": 1.0}, {"b": 1.0}])
    with pytest.raises(ValueError, match="input 'a'"):
        encode_examples({"a": None})
    with pytest.raises(ValueError, match="cannot read file"):
        encode_examples({"a": image_file.parent / "missing.png"})
    encoded = encode_examples({"t": "hi", "b": b"\x00", "f": image_file, "x": [1, 2]})[0]
    assert encoded["t"] == "hi" and encoded["b"] == b"\x00"
    assert encoded["f"] == image_file.read_bytes()
    assert encoded["x"].tolist() == [1.0, 2.0]


def test_numpy_strings_are_text_and_binary_everywhere():
    texts, blobs = np.array(["works great", ""]), np.array([b"\x89PNG", b""])
    numpy_examples = [
        {"review": texts[0], "image": blobs[0]},
        {"review": np.array(""), "image": np.bytes_(b"")},
    ]
    plain_examples = [
        {"review": "works great", "image": b"\x89PNG"},
        {"review": "", "image": b""},
    ]
    encoded = encode_examples(numpy_examples)
    assert encoded == plain_examples
    assert all(type(v) in (str, bytes) for example in encoded for v in example.values())
    assert json.dumps(rest_instances(numpy_examples)) == json.dumps(rest_instances(plain_examples))
    assert tensor_protos(numpy_examples) == tensor_protos(plain_examples)  # the gRPC request


def test_text_is_not_read_as_numbers():
    # numpy parses "1.5" as a float: text given for numbers, or several texts
    # for one example, is refused naming the input rather than sent as numbers.
    for value in (np.array(["1.5", "2"]), ["1.5", "2"], np.array(["a", "b"], dtype=object)):
        with pytest.raises(ValueError, match="input 'readings': expected a str, bytes, number"):
            encode_examples({"readings": value})
    for value in (np.bool_(True), np.array([True, False])):  # as a Python bool is
        with pytest.raises(ValueError, match="input 'readings'"):
            encode_examples({"readings": value})
    with_none = encode_examples({"readings": [1.0, None]})[0]["readings"]
    assert np.isnan(with_none).tolist() == [False, True]  # None is still a missing number
    mixed = "Input 'readings': every example needs text/binary, or every example numbers; received"
    with pytest.raises(ValueError, match=f"{mixed} str, numbers"):
        tensor_protos([{"readings": "1.5"}, {"readings": [1.5]}])


def test_numpy_string_inputs_get_the_same_answers_over_rest_and_grpc(clients, image_file):
    plain = _examples(image_file)
    reviews = np.array([example["review"] for example in plain])
    numpy_examples = [{**example, "review": review} for example, review in zip(plain, reviews)]
    assert isinstance(numpy_examples[0]["review"], np.str_)
    for protocol in ("rest", "grpc"):
        assert clients[protocol].predict(numpy_examples) == clients[protocol].predict(plain)


def test_parse_input_arg():
    assert parse_input_arg("image=@cat.png") == ("image", Path("cat.png"))
    assert parse_input_arg("readings=[1, 2.5, 3]") == ("readings", [1, 2.5, 3])
    assert parse_input_arg("x=0.5") == ("x", 0.5)
    assert parse_input_arg("review=great phone") == ("review", "great phone")
    assert parse_input_arg('review="5"') == ("review", "5")
    with pytest.raises(ValueError, match="name=value"):
        parse_input_arg("no-equals-sign")


def test_main_prints_json_and_reports_errors(server, image_file, capsys):
    args = [f"image=@{image_file}", "review=works great", "readings=[0.5, -1.0, 2.0]"]
    code = client_module.main(
        ["--server", server.rest_url, "--model", "tiny", "--label", "stable"] + args
    )
    rest_output = json.loads(capsys.readouterr().out)
    assert code == 0
    code = client_module.main(
        ["--server", f"grpc://{server.grpc_target}", "--model", "tiny", "--label", "stable"] + args
    )
    assert code == 0 and json.loads(capsys.readouterr().out) == rest_output
    assert rest_output[0]["classes"] in LABELS and len(rest_output[0]["probabilities"]) == 3

    code = client_module.main(["--server", server.rest_url, "--model", "nope"] + args)
    captured = capsys.readouterr()
    assert code == 1 and "Servable not found" in captured.err


# Runs `mmkeras ARGS` as the console script does, in a fresh process, and prints
# whether TensorFlow was loaded on the last line.
_COMMAND = """import sys
from mmkeras.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(code, file=sys.stderr)
print('tensorflow' in sys.modules)
"""


def _command(*argv):
    import subprocess

    child = subprocess.run([sys.executable, "-c", _COMMAND, *map(str, argv)], capture_output=True, text=True,
                           cwd=Path(__file__).parents[1], timeout=120)
    *output, loaded = child.stdout.splitlines()
    return "\n".join(output), child.stderr, loaded == "True"


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["serve", "--help"], ["run", "--help"],
                                  ["serving-config", "--help"], ["data", "validate", "--help"],
                                  ["run"], ["predict", "--model"]])
def test_help_and_usage_errors_answer_without_tensorflow(argv):
    output, errors, loaded_tensorflow = _command(*argv)
    assert "usage: mmkeras" in output + errors
    assert not loaded_tensorflow


def test_a_rest_prediction_from_the_command_loads_no_tensorflow(server, models, image_file):
    output, errors, loaded_tensorflow = _command(
        "predict", "--server", server.rest_url, "--model", "tiny", f"image=@{image_file}", "review=works great",
        "readings=[0.5, -1.0, 2.0]")
    assert errors.strip().endswith("0"), errors
    (printed,) = json.loads(output)
    reference = {"image": png_bytes(210), "review": "works great", "readings": [0.5, -1.0, 2.0]}
    expected = local_predict(models / "tiny" / "2", [reference])["probabilities"][0]
    np.testing.assert_allclose(printed["probabilities"], expected, rtol=1e-6)
    assert not loaded_tensorflow
