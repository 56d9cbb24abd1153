"""Layers: forward values, gradients through a model, build, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close
from xpnet import _backend, layers

rng = np.random.default_rng(0)
X = rng.normal(size=(7, 5))
LABELS = rng.integers(0, 3, size=7)


def _model(placement, stack, loss="sparse_categorical_crossentropy"):
    model = xn.Sequential(
        stack, backend=placement.name, device=placement.device, dtype="float64", seed=3
    )
    model.compile(loss=loss, optimizer="sgd")
    return model


@pytest.mark.parametrize(
    "activation",
    ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "silu"],
)
def test_dense_gradients_for_every_activation(activation, placement):
    model = _model(placement, [layers.Dense(6, activation=activation), layers.Dense(3)])
    model.compile(loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd")
    errors = xn.gradcheck(model, X, LABELS)
    assert set(errors) == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}
    assert max(errors.values()) < 1e-6, errors


def test_every_layer_type_backpropagates(placement):
    stack = [
        layers.Dense(6),
        layers.LeakyReLU(0.2),
        layers.Dense(6),
        layers.ELU(0.7),
        layers.Dense(6),
        layers.PReLU(alpha_initializer=xn.initializers.Constant(0.3)),
        layers.Dense(6, activation="tanh"),
        layers.Softplus(),
        layers.Dense(6),
        layers.Activation("gelu"),
        layers.Tanh(),
        layers.Dense(6),
        layers.ReLU(),
        layers.Dense(6),
        layers.Sigmoid(),
        layers.Dropout(0.5),  # the identity outside training
        layers.Dense(3),
        layers.Softmax(),
    ]
    model = _model(placement, stack, loss="categorical_crossentropy")
    one_hot = np.eye(3)[LABELS]
    errors = xn.gradcheck(model, X, one_hot)
    assert "prelu/alpha" in errors
    assert max(errors.values()) < 1e-6, errors


def test_fused_and_unfused_outputs_have_right_gradients(placement):
    for stack, loss, y in [
        ([layers.Dense(1, activation="sigmoid")], "binary_crossentropy", (LABELS > 0) * 1.0),
        ([layers.Dense(3, activation="softmax")], "sparse_categorical_crossentropy", LABELS),
        ([layers.Dense(3), layers.Softmax()], "categorical_crossentropy", np.eye(3)[LABELS]),
        ([layers.Dense(2, activation="sigmoid")], "mse", rng.random((7, 2))),
    ]:
        model = _model(placement, stack, loss)
        assert max(xn.gradcheck(model, X, y).values()) < 1e-6


def test_dense_forward_is_keras_layout(make, placement):
    layer = layers.Dense(4, activation="relu")
    layer.build((None, 5), placement=placement, dtype=placement.xp.float64, rng=0)
    assert tuple(layer.kernel.shape) == (5, 4) and tuple(layer.bias.shape) == (4,)
    kernel = xn.to_numpy(layer.kernel)
    out = layer(make(X))
    assert_close(out, np.maximum(X @ kernel, 0.0))
    assert _backend.device_of(out) == placement.device


def test_dense_without_bias(placement):
    model = _model(placement, [layers.Dense(3, use_bias=False)])
    model.build(5)
    assert list(model.layers[0].params) == ["kernel"]
    model.compile(loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd")
    assert max(xn.gradcheck(model, X, LABELS).values()) < 1e-6


def test_dropout_masks_scale_and_repeat(make, placement):
    drop = layers.Dropout(0.25, seed=7)
    x = make(np.ones((400, 50)))
    y, backward = drop.forward(x, training=True)
    host = xn.to_numpy(y)
    assert set(np.unique(host)) <= {0.0, 1.0 / 0.75}
    assert (host == 0).mean() == pytest.approx(0.25, abs=0.02)
    assert_close(backward(make(np.ones((400, 50)))), host)  # the same mask
    again, _ = layers.Dropout(0.25, seed=7).forward(x, training=True)
    assert_close(again, host)
    same, _ = drop.forward(x, training=False)
    assert_close(same, np.ones((400, 50)))


def test_input_dim_builds_without_data():
    model = xn.Sequential([layers.Dense(3, input_dim=4), layers.Dense(2)])
    model.build()
    assert model.built and model.count_params() == 4 * 3 + 3 + 3 * 2 + 2


def test_layer_names_are_unique():
    model = xn.Sequential([layers.Dense(2), layers.Dense(2), layers.ReLU(), layers.Dense(1)])
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "relu", "dense_2"]


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="Dense units must be a positive int"):
        layers.Dense(0)
    with pytest.raises(ValueError, match="Unknown activation 'rleu'. Did you mean 'relu'"):
        layers.Dense(3, activation="rleu")
    with pytest.raises(ValueError, match="Unknown initializer 'glorot_unifrom'"):
        layers.Dense(3, kernel_initializer="glorot_unifrom")
    with pytest.raises(ValueError, match=r"Dropout rate must be in \[0, 1\)"):
        layers.Dropout(1.0)
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        layers.Dense(3, input_dim=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        layers.Dense(3, colour="red")
    with pytest.raises(TypeError, match="Sequential.add expects a Layer"):
        xn.Sequential(["dense"])


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda **kw: layers.Dense(2, **kw),
        lambda **kw: layers.Activation("tanh", **kw),
        lambda **kw: layers.ReLU(**kw),
        lambda **kw: layers.LeakyReLU(0.2, **kw),
        lambda **kw: layers.ELU(**kw),
        lambda **kw: layers.Softmax(**kw),
        lambda **kw: layers.PReLU(**kw),
        lambda **kw: layers.Dropout(0.1, **kw),
        lambda **kw: layers.BatchNormalization(**kw),
    ],
)
def test_every_layer_takes_input_shape(make_layer):
    assert make_layer(input_shape=(3,)).input_dim == 3
    assert make_layer(input_shape=[3], input_dim=3).input_dim == 3
    assert make_layer(input_shape=(3,)).get_config()["input_dim"] == 3
    model = xn.Sequential([make_layer(input_shape=(3,))])
    assert model.built and model.input_dim == 3


@pytest.mark.parametrize(
    "shape", [3, (3, 4), (), (0,), (-2,), (None,), ("3",), (3.0,), (True,), "3", None]
)
def test_bad_shapes_are_refused(shape):
    if shape is not None:
        with pytest.raises(ValueError, match=r"input_shape must be a 1-tuple of a positive int"):
            layers.Dense(2, input_shape=shape)
    with pytest.raises(ValueError, match=r"Input shape must be a 1-tuple of a positive int"):
        layers.Input(shape=shape)


def test_input_dim_and_input_shape_must_agree():
    with pytest.raises(ValueError, match=r"input_dim=4 and input_shape=\(3,\) disagree"):
        layers.Dense(2, input_dim=4, input_shape=(3,))
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        layers.Dense(2, input_dim=True)


def test_input_is_not_a_layer_of_the_model():
    model = xn.Sequential([layers.Input(shape=(3,)), layers.Dense(2), layers.ReLU()])
    assert [type(layer) for layer in model.layers] == [layers.Dense, layers.ReLU]
    assert model.built and model.input_dim == 3
    assert layers.Input(shape=(3,), name="pixels").get_config() == {"shape": [3], "name": "pixels"}
    with pytest.raises(ValueError, match="an Input must come first"):
        xn.Sequential([layers.Dense(2), layers.Input(shape=(3,))])
    with pytest.raises(ValueError, match="an Input must come first"):
        xn.Sequential([layers.Input(shape=(3,)), layers.Input(shape=(3,))])
    with pytest.raises(ValueError, match=r"has input_dim=4 but the model's Input has shape \(3,\)"):
        xn.Sequential([layers.Input(shape=(3,)), layers.Dense(2, input_dim=4)])
    with pytest.raises(ValueError, match="Unknown layer 'Input'"):
        layers.get({"class_name": "Input", "config": {"shape": [3]}})


@pytest.mark.parametrize(
    "layer",
    [
        layers.Dense(
            3, activation=xn.activations.get("elu", alpha=0.5), kernel_initializer="he_normal"
        ),
        layers.Dense(3, kernel_regularizer="l2", bias_regularizer=xn.regularizers.L1(0.5)),
        layers.PReLU(alpha_regularizer="l1", input_shape=(4,)),
        layers.BatchNormalization(
            momentum=0.9,
            epsilon=1e-5,
            center=False,
            gamma_initializer="random_normal",
            moving_variance_initializer=xn.initializers.Constant(2.0),
            gamma_regularizer="l2",
        ),
        layers.Activation("leaky_relu", alpha=0.3),
        layers.LeakyReLU(0.2),
        layers.ELU(0.5),
        layers.Softmax(axis=-1),
        layers.ReLU(),
        layers.PReLU(),
        layers.Dropout(0.3, seed=1),
    ],
)
def test_config_round_trip(layer):
    layer.name = "x"
    again = layers.from_config(type(layer).__name__, layer.get_config())
    assert type(again) is type(layer)
    assert again.get_config() == layer.get_config()


def test_every_relu_layer_runs_the_activations_fast_path(monkeypatch, placement):
    calls = []
    relu = xn.activations.ReLU

    def spy(method):
        def wrapped(self, *args):
            calls.append(method.__name__)
            return method(self, *args)

        return wrapped

    monkeypatch.setattr(relu, "forward_", spy(relu.forward_))
    monkeypatch.setattr(relu, "backward_", spy(relu.backward_))
    results = []
    for stack in (
        [layers.Dense(4, activation="relu"), layers.Dense(3)],
        [layers.Dense(4), layers.ReLU(), layers.Dense(3)],
        [layers.Dense(4), layers.Activation("relu"), layers.Dense(3)],
    ):
        calls.clear()
        model = _model(placement, stack)
        model.compile(
            loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd"
        )
        results.append(model.train_on_batch(X, LABELS))
        # a stack of Dense layers on NumPy is the flat step, with its own in-place ReLU
        flat = any(plan.chain is not None for plan in model._plans.values())
        assert flat or "backward_" in calls, stack
        assert flat == (placement.name == "numpy" and len(stack) == 2)
        assert max(xn.gradcheck(model, X, LABELS).values()) < 1e-6
    # the same network and seed: the same step whichever layer holds the ReLU
    assert results[0] == pytest.approx(results[1]) == pytest.approx(results[2])


def test_get_returns_a_layer():
    assert isinstance(layers.get("relu"), layers.ReLU)
    dense = layers.Dense(2)
    assert layers.get(dense) is dense
    assert layers.get(layers.serialize(dense)).units == 2
    with pytest.raises(TypeError, match="pass an instance or a config dict"):
        layers.get("Dense")
