"""Two-stage fine-tuning of a pretrained image backbone.

Stage one trains the new layers on top of a frozen backbone:
`ImageInput(..., trainable=False)` freezes it and calls it with
`training=False`, so its BatchNorm layers normalise with their pretrained
statistics. Stage two, `unfreeze`, makes the top layers of that backbone
trainable; recompile with a low learning rate (about 1/10 to 1/100 of stage
one's) and fit again. BatchNorm layers stay frozen in stage two: updating
their statistics on a small dataset would undo what the layers after them
learned (the Keras transfer-learning guide's advice). The `training=False`
call stays in the graph, which keeps them in inference mode either way.

Example:
>>> import keras
>>> import mmkeras as mmk
>>> model = mmk.build_unimodal(mmk.ImageInput("photo", size=(32, 32), backbone="tiny_cnn", trainable=False),
...                            mmk.Classification(labels=["ok", "defect"]))
>>> model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
>>> # model.fit(train_ds, epochs=5)                      # stage one: the head
>>> unfreeze(model, "photo", num_layers=1)
['conv2']
>>> model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
>>> # model.fit(train_ds, epochs=5)                      # stage two: the top too
"""

import math

import keras


def unfreeze(model, input_name, *, top_fraction=None, num_layers=None):
    """Makes the top layers of one image input's backbone trainable.

    Layers are counted in the backbone's own order from input to output,
    as the layers that hold weights directly (convolutions, dense and
    attention projections, layer norms, embeddings), BatchNorm excluded:
    BatchNorm layers are always left frozen. Every other layer of the
    backbone is frozen, so calling this twice keeps the second choice.

    Compile the model again afterwards: Keras reads trainable flags when it
    compiles. A frozen backbone reloads frozen from a `.keras` file, but
    the per-layer flags set here are training state that a KerasHub or
    KerasCV backbone's config does not keep: after reloading, call
    `unfreeze` again to resume stage two.

    Args:
        model: a model from `mmk.build_model` or `mmk.build_unimodal`.
        input_name: the name of one of its `ImageInput`s.
        top_fraction: the share of the backbone's layers to unfreeze, in
            `(0, 1]`, rounded up to whole layers.
        num_layers: how many layers to unfreeze, counted from the top.
            Give exactly one of `top_fraction` and `num_layers`.

    Returns:
        The paths of the layers made trainable (e.g.
        `"vit_encoder/transformer_block_12/mlp/dense_2"`), from the bottom up.

    Raises:
        ValueError: `input_name` is not an image input of the model, or
            neither or both of `top_fraction` and `num_layers` are given, or
            either is out of range.

    Example:
    >>> import mmkeras as mmk
    >>> model = mmk.build_unimodal(mmk.ImageInput("photo", size=(32, 32), backbone="tiny_cnn", trainable=False),
    ...                            mmk.Classification(labels=["ok", "defect"]))
    >>> unfreeze(model, "photo", top_fraction=0.5)
    ['conv1', 'conv2']
    """
    backbone = _backbone(model, input_name)
    layers = weight_layers(backbone)
    trainable = [layer for layer in layers if not isinstance(layer, keras.layers.BatchNormalization)]
    count = _count(len(trainable), top_fraction, num_layers)
    top = trainable[len(trainable) - count:]
    backbone.trainable = True
    # Parents come before their sublayers in `layers`, and setting a
    # parent's flag resets its sublayers', so one pass in order is enough.
    for layer in layers:
        layer.trainable = any(layer is chosen for chosen in top)
    return [layer.path for layer in top]


def weight_layers(backbone):
    """The layers of `backbone` that own weights directly, input side first.

    Ordered by where their first weight stands in `backbone.weights`, which
    follows the functional graph (and, inside a layer, the order its
    sublayers were built).

    Example:
    >>> from mmkeras import backbones
    >>> [layer.path for layer in weight_layers(backbones.build_image_backbone("tiny_cnn"))][:3]
    ['conv0', 'bn0', 'conv1']
    """
    position = {id(weight): i for i, weight in enumerate(backbone.weights)}
    owners = []
    # `_flatten_layers` is Keras' own walk over nested layers; Keras 3 has no
    # public one for layers that are not models (a ViT encoder's blocks).
    for layer in backbone._flatten_layers(include_self=False):
        inherited = {id(w) for child in layer._flatten_layers(include_self=False, recursive=False)
                     for w in child.weights}
        own = [position[id(w)] for w in layer.weights if id(w) not in inherited and id(w) in position]
        if own:
            owners.append((min(own), layer))
    return [layer for _, layer in sorted(owners, key=lambda owner: owner[0])]


def _backbone(model, input_name):
    try:
        return model.get_layer(f"{input_name}_backbone")
    except ValueError:
        images = sorted(layer.name[: -len("_backbone")] for layer in model.layers
                        if layer.name.endswith("_backbone"))
        raise ValueError(
            f"The model has no image input named {input_name!r} (no layer "
            f"'{input_name}_backbone'). Its image inputs: {images}."
        ) from None


def _count(available, top_fraction, num_layers):
    if (top_fraction is None) == (num_layers is None):
        raise ValueError(
            f"Give exactly one of top_fraction and num_layers. Received: "
            f"top_fraction={top_fraction!r}, num_layers={num_layers!r}"
        )
    if num_layers is not None:
        if not isinstance(num_layers, int) or not 1 <= num_layers <= available:
            raise ValueError(f"num_layers must be an integer from 1 to {available} (the backbone's "
                             f"layers with weights, BatchNorm excluded). Received: {num_layers!r}")
        return num_layers
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1]. Received: {top_fraction!r}")
    return math.ceil(top_fraction * available)
