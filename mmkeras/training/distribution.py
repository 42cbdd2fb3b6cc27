"""Mixed precision and `tf.distribute` strategies."""

import contextlib
import json
import os

import keras
import tensorflow as tf


_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def set_precision(policy="float32"):
    """Set Keras' global dtype policy; call it before building the model.

    `"mixed_float16"` suits NVIDIA GPUs (compute capability 7.0+): `compile`
    then wraps the optimizer in a `LossScaleOptimizer` by itself.
    `"mixed_bfloat16"` suits TPUs and recent CPUs/GPUs and needs no loss
    scaling. Variables stay float32 either way.

    Args:
        policy: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.

    Returns:
        The `keras.DTypePolicy` now in effect.

    Example:
    >>> set_precision("mixed_bfloat16").compute_dtype
    'bfloat16'
    >>> set_precision("float32").name
    'float32'
    """
    if policy not in _POLICIES:
        raise ValueError(f"Expected precision in {_POLICIES}; received {policy!r}.")
    keras.mixed_precision.set_global_policy(policy)
    return keras.mixed_precision.global_policy()


_STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def strategy(name="default", *, devices=None, tpu=None):
    """A `tf.distribute.Strategy` by name. Build and compile under its scope.

    - `"default"`: one device (no distribution).
    - `"mirrored"`: synchronous data parallelism on one machine, over
      `devices`, else all GPUs, else all logical CPU devices.
    - `"multi_worker"`: `MultiWorkerMirroredStrategy`; the cluster and this
      task come from the `TF_CONFIG` environment variable. Create it at
      program start, before any other TensorFlow call, and train with
      `mmkeras.training.fit`: Keras 3's own `model.fit` fails under this
      strategy (keras-team/keras#20585), `fit` works around it.
    - `"tpu"`: `TPUStrategy` via `TPUClusterResolver(tpu)`; `tpu` is a TPU
      name, a `grpc://` address or `"local"` on a TPU VM (`None` reads the
      `TPU_NAME` environment variable).

    Args:
        name: one of `"default"`, `"mirrored"`, `"multi_worker"`, `"tpu"`.
        devices: device names for `"mirrored"`.
        tpu: TPU name or address for `"tpu"`.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> with strategy("default").scope():
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy(tpu)
    raise ValueError(f"Expected strategy name in {_STRATEGIES}; received {name!r}.")


def _multi_worker_strategy():
    raw = os.environ.get("TF_CONFIG")
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not raw:
        raise RuntimeError("strategy('multi_worker') reads the cluster from the TF_CONFIG "
                           f"environment variable, which is not set. Expected e.g. {example}.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); received {raw!r}.") from None
    if not config.get("cluster") or "task" not in config:
        raise ValueError(f"Expected TF_CONFIG with 'cluster' and 'task' keys, e.g. {example}; "
                         f"received {raw!r}.")
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        raise RuntimeError("strategy('multi_worker') must be created at program start, "
                           f"before any other TensorFlow call; TensorFlow says: {error}") from error


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":  # a TPU VM's chips are local devices: no cluster to join
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise RuntimeError(
            f"strategy('tpu') found no usable TPU (tpu={tpu!r}): {error}. Expected to run on "
            "a TPU VM with tpu='local', or tpu=<TPU name or grpc:// address>, or "
            "TPU_NAME set.") from error


@contextlib.contextmanager
def _multi_worker_reduce_fixes(distribution):
    """Work around Keras 3 `fit` calls that `MultiWorkerMirroredStrategy` rejects.

    Keras 3.x's TensorFlow trainer calls `strategy.reduce` in two ways that
    only `MirroredStrategy` accepts (keras-team/keras#20585):
    - before the first step, on a whole batch (a nested structure), to build
      the model. Keras reads only shapes and dtypes of the result, so nested
      calls get each value's local copy, with no cross-worker traffic (string
      inputs could not be all-reduced anyway);
    - on scalar per-replica logs with `axis=0`; a scalar has no axis 0, so
      these are reduced over replicas with `axis=None`, which is the mean
      over replicas that Keras asks for.
    The strategy is restored when `fit` returns.
    """
    if not isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    reduce_one = distribution.reduce

    def local_copy(value):
        return distribution.experimental_local_results(value)[0]

    def reduce(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(local_copy, value)
        if axis is not None and local_copy(value).shape.rank == 0:
            axis = None
        return reduce_one(reduce_op, value, axis=axis)

    distribution.reduce = reduce
    try:
        yield
    finally:
        del distribution.reduce
