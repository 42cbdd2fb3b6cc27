"""Deployment kit: TF Serving client, configs, warmup records, local dev server.

Production serving is TensorFlow Serving (`tensorflow_model_server`); the dev
server (`mmkeras serve`) is a stand-in for laptops and CI.
"""

from mmkeras.serving.batching import write_batching_parameters
from mmkeras.serving.client import Client, ServingError
from mmkeras.serving.example_requests import write_example_request
from mmkeras.serving.models_config import ServedModel, read_model_config, write_model_config
from mmkeras.serving.server_command import docker_command, model_server_command
from mmkeras.serving.warmup import read_warmup_requests, write_warmup_requests


def __getattr__(name):
    # The dev server pulls in gRPC and TF Text; load it only when asked for.
    if name == "DevServer":
        from mmkeras.serving.dev_server import DevServer

        return DevServer
    raise AttributeError(f"module 'mmkeras.serving' has no attribute {name!r}")
