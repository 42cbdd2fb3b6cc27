"""TF Serving's server-side batching: `batching_parameters.txt`.

`tensorflow_model_server --enable_batching --batching_parameters_file=...`
groups concurrent requests into batches; this module writes and reads that
file.
"""

from pathlib import Path


def _batching_parameters_class():
    """TF Serving's BatchingParameters message.

    Its .proto is not in the tensorflow-serving-api wheel, so the message is
    declared here (same names and types) in a private descriptor pool.
    """
    from google.protobuf import descriptor_pb2
    from google.protobuf import descriptor_pool
    from google.protobuf import message_factory
    from google.protobuf import wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(
        name="mmkeras/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file.message_type.add(name="BatchingParameters")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    wrapped = [
        ("max_batch_size", "Int64Value"),
        ("batch_timeout_micros", "Int64Value"),
        ("max_enqueued_batches", "Int64Value"),
        ("num_batch_threads", "Int64Value"),
        ("thread_pool_name", "StringValue"),
    ]
    for number, (name, type_name) in enumerate(wrapped, start=1):
        message.field.add(
            name=name,
            number=number,
            label=optional,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=f".google.protobuf.{type_name}",
        )
    message.field.add(
        name="allowed_batch_sizes",
        number=6,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        label=optional,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    )
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def batching_parameters(
    *,
    max_batch_size=32,
    batch_timeout_micros=2000,
    max_enqueued_batches=100,
    num_batch_threads=4,
    allowed_batch_sizes=None,
    pad_variable_length_inputs=False,
):
    """TF Serving `BatchingParameters` (a proto message).

    The defaults suit a CPU server: up to 32 examples per batch, waiting at
    most 2 ms to fill one, and 4 threads running batches (set it to the
    number of cores serving the model).

    Args:
        max_batch_size: largest batch run at once.
        batch_timeout_micros: longest wait for a batch to fill.
        max_enqueued_batches: queue length before requests are refused.
        num_batch_threads: batches run concurrently.
        allowed_batch_sizes: optional increasing sizes that batches are padded
            to (fewer shapes to compile on GPUs); must end at max_batch_size.
        pad_variable_length_inputs: pad inputs of different lengths.

    >>> batching_parameters(max_batch_size=8, allowed_batch_sizes=[4, 8]).allowed_batch_sizes
    [4, 8]
    """
    sizes = list(allowed_batch_sizes or [])
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size):
        raise ValueError(
            f"allowed_batch_sizes must increase and end at max_batch_size "
            f"({max_batch_size}), received {sizes}."
        )
    for name, value in [
        ("max_batch_size", max_batch_size),
        ("num_batch_threads", num_batch_threads),
        ("max_enqueued_batches", max_enqueued_batches),
    ]:
        if value < 1:
            raise ValueError(f"{name} must be >= 1, received {value}.")
    params = _batching_parameters_class()()
    params.max_batch_size.value = max_batch_size
    params.batch_timeout_micros.value = batch_timeout_micros
    params.max_enqueued_batches.value = max_enqueued_batches
    params.num_batch_threads.value = num_batch_threads
    params.allowed_batch_sizes.extend(sizes)
    params.pad_variable_length_inputs = pad_variable_length_inputs
    return params


def write_batching_parameters(path, **kwargs):
    """Writes `batching_parameters.txt` for `--batching_parameters_file`.

    Args:
        path: file to write.
        **kwargs: see `batching_parameters`.

    Returns:
        the written path.

    Example:

    >>> import tempfile
    >>> path = write_batching_parameters(Path(tempfile.mkdtemp()) / "batching_parameters.txt",
    ...                                  max_batch_size=16)
    >>> read_batching_parameters(path).max_batch_size.value
    16
    """
    from google.protobuf import text_format

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_format.MessageToString(batching_parameters(**kwargs)))
    return path


def read_batching_parameters(path):
    """Parses a `batching_parameters.txt` file (checks its field names).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "batching_parameters.txt"
    >>> _ = path.write_text("max_batch_size { value: 4 }")
    >>> read_batching_parameters(path).max_batch_size.value
    4
    """
    from google.protobuf import text_format

    params = _batching_parameters_class()()
    text_format.Parse(Path(path).read_text(), params)
    return params
