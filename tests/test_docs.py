"""DEVELOPING.md stays true to the code: what it names exists, and its example runs."""

import re
from pathlib import Path

import keras
import numpy as np

import mmkeras as mmk
from mmkeras import fusion

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "DEVELOPING.md").read_text()
FILE_ENDINGS = (".py", ".md", ".yaml", ".txt", ".ini")
# Names the guide uses that belong to other projects.
EXTERNAL_NAMES = {"Lambda", "grep"}


def backticked():
    return re.findall(r"`([^`\n]+)`", GUIDE)


def python_blocks():
    return re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)


def section(number):
    return re.search(rf"^## {number}\..*?(?=^## |\Z)", GUIDE, flags=re.S | re.M).group(0)


def sources():
    files = [*ROOT.glob("mmkeras/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py"),
             *ROOT.glob("apps/*/*.yaml"), ROOT / "pytest.ini", ROOT / "README.md"]
    return "\n".join(path.read_text() for path in files if path.name != "test_docs.py")


def test_every_file_the_guide_names_exists():
    missing = []
    for span in backticked():
        for token in re.split(r"[\s,()]+", span):
            if "<" in token or "*" in token or not token.endswith(FILE_ENDINGS):
                continue
            if "/" in token:
                found = (ROOT / token).exists() or (ROOT / "mmkeras" / token).exists()
            else:  # a file name alone: at the root, in the package, or one or two folders down
                places = (ROOT.glob(pattern) for pattern in (token, f"mmkeras/**/{token}", f"*/{token}",
                                                              f"*/*/{token}"))
                found = any(any(place) for place in places)
            if not found:
                missing.append(token)
    assert missing == [], missing


def test_every_name_the_guide_uses_is_in_the_code():
    """Functions, classes, registries and test cases named in backticks, e.g.
    `_check_across` or `ENCODER_CASES`: a rename shows up here."""
    code = sources()
    defined_here = set(re.findall(r"(?:class|def) (\w+)", "".join(python_blocks())))
    unknown = set()
    for span in backticked():
        if "/" in span or span.endswith(FILE_ENDINGS + (".json", ".keras")):
            continue
        match = re.match(r"[A-Za-z_][\w.]*", span)
        for name in match.group(0).split(".") if match else []:
            if len(name) <= 2 or name in defined_here | EXTERNAL_NAMES:
                continue
            if not re.search(rf"\b{name}\b", code):
                unknown.add(name)
    assert sorted(unknown) == [], sorted(unknown)


def test_the_module_table_lists_every_module():
    table = section(2)
    unlisted = []
    for path in sorted(ROOT.glob("mmkeras/**/*.py")):
        relative = path.relative_to(ROOT)
        if path.name in ("__init__.py", "__main__.py"):
            package = f"{relative.parent}/"
            if f"`{package}`" not in table and str(relative) not in table:
                unlisted.append(package)
        elif str(relative) not in table and path.name not in table and f"`{path.stem}`" not in table:
            unlisted.append(str(relative))
    assert unlisted == [], unlisted


def test_the_fusion_layer_example_works_in_a_model(monkeypatch, tmp_path):
    (block,) = [block for block in python_blocks() if "class MaxFusion" in block]
    namespace = {}
    exec(block, namespace)
    layer_class = namespace["MaxFusion"]
    layer = layer_class(["image", "text"], hidden_dim=8)
    assert layer(np.ones((2, 2, 4), "float32"), np.ones((2, 2), "float32")).shape == (2, 8)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()

    monkeypatch.setitem(fusion.FUSIONS, "max", layer_class)  # step 2 of the recipe, for this test only
    model = mmk.build_model(
        [mmk.SensorInput("a", ["x"], mean=[0.0], variance=[1.0]),
         mmk.SensorInput("b", ["y"], mean=[0.0], variance=[1.0])],
        fusion="max", task=mmk.Classification(labels=["no", "yes"]), fusion_options={"hidden_dim": 8})
    inputs = {"a": np.array([[1.0], [np.nan]], "float32"), "b": np.array([[2.0], [3.0]], "float32")}
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert isinstance(reloaded.get_layer("fusion"), layer_class)
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0),
                               rtol=1e-6)


def test_no_two_modules_share_a_name():
    """A module's name alone says what it is (issue 24, item 7): no `config.py` beside
    `serving/config.py`, no `audio.py` beside `modalities/audio.py`."""
    import collections
    from pathlib import Path

    package = Path(__file__).parents[1] / "mmkeras"
    names = collections.defaultdict(list)
    for path in package.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            names[path.stem].append(str(path.relative_to(package)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}


def test_the_public_api_is_what_all_lists():
    """`import mmkeras as mmk` offers the README's names (`mmk.serving.Client`,
    `mmk.evaluation.evaluate`, the registries) and nothing stray such as `os`."""
    import types

    import mmkeras as mmk

    public = {name for name in dir(mmk) if not name.startswith("_")}
    own_modules = {name for name in public if isinstance(getattr(mmk, name), types.ModuleType)
                   and getattr(mmk, name).__name__ == f"mmkeras.{name}"}
    assert public - own_modules == set(mmk.__all__) - own_modules
    assert {"evaluation", "serving", "training"} <= set(mmk.__all__)
    assert mmk.serving.Client and mmk.evaluation.evaluate and "gated" in mmk.FUSIONS
    assert {"image", "text", "audio", "sensor"} <= set(mmk.MODALITIES) and "tiny_cnn" in mmk.IMAGE_BACKBONES
