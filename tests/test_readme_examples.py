"""The README's Python examples run as written, in order, in one namespace and folder.

Each example is the ```python block after a `<!-- example: ... -->` line, which says
what it needs: a preset folder (a tiny one is written, as the pretrained-encoder
tests do), a server for the export (the dev server on the README's ports), or
nothing; an example that downloads is skipped (no network in tests).
"""

import os
import pathlib
import re
import shutil

import pytest

from mmkeras.serving import DevServer

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.compile(r"<!-- example: (.*?) -->\n```python\n(.*?)```", re.S)


def readme_examples():
    return EXAMPLE.findall(README.read_text())


def test_every_python_block_is_an_example():
    assert README.read_text().count("```python") == len(readme_examples()) >= 4


def _tiny_dinov2_preset(path):
    import keras_hub

    # The size the README's spec asks for; patches of 32 keep it small.
    keras_hub.models.DINOV2Backbone(patch_size=32, image_shape=(224, 224, 3), position_embedding_shape=(224, 224),
                                    num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32).save_to_preset(str(path))


def _models_config(folder):
    base = (folder / "savedmodels" / "sentiment").resolve()
    path = folder / "models.config"
    path.write_text(f'model_config_list {{ config {{ name: "sentiment" base_path: "{base}" '
                    f'model_platform: "tensorflow" version_labels {{ key: "stable" value: 1 }} }} }}')
    return str(path)


def test_the_readme_examples_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    ran = 0
    for needs, code in readme_examples():
        if "downloads" in needs:
            continue
        if "presets/dinov2_base" in needs:
            _tiny_dinov2_preset(tmp_path / "presets" / "dinov2_base")
        if "served" in needs:
            images = sorted((tmp_path / "data" / "sentiment" / "images").iterdir())
            shutil.copy(images[0], tmp_path / "photo.jpg")  # PNG bytes: the name does not matter
            shutil.copy(sorted((tmp_path / "data" / "sentiment" / "audio").iterdir())[0], tmp_path / "clip.wav")
            with DevServer(model_config_file=_models_config(tmp_path), rest_port=8501, grpc_port=8500,
                           poll_seconds=0):
                exec(compile(code, f"README example {ran + 1}", "exec"), namespace)
                # The photo and the voice left out: sent as missing (README, "A missing input").
                assert namespace["client"].predict({"review": "fine"})[0]["classes"] in namespace["labels"]
        else:
            exec(compile(code, f"README example {ran + 1}", "exec"), namespace)
        ran += 1
    assert ran == len(readme_examples()) - 1
    assert os.path.isdir(tmp_path / "savedmodels" / "sentiment" / "1")
