"""The one configuration protocol: get_config / from_config / repr, and the
shared serialize / get of every family."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close
from xpnet import (
    _config,
    activations,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    schedules,
)

SCHEDULE = schedules.StepDecay(0.1, step_size=10, gamma=0.5)

# family module: (objects with settings off their defaults, names get accepts,
#                 a misspelt name and the suggestion it gets)
FAMILIES = {
    "activations": (
        activations,
        [activations.LeakyReLU(0.2), activations.Softmax(axis=0), activations.GELU()],
        ["relu", "Leaky_ReLU", "Swish", "ELU"],
        ("Relu_", "relu"),
    ),
    "initializers": (
        initializers,
        [initializers.RandomNormal(1.0, 0.5, seed=3), initializers.VarianceScaling(2.0, "fan_out")],
        ["he_normal", "Xavier_Uniform", "ZEROS"],
        ("He_Normall", "he_normal"),
    ),
    "losses": (
        losses,
        [losses.Huber(0.5, reduction="sum"), losses.BinaryCrossentropy(from_logits=True)],
        ["mse", "Sparse_Categorical_Crossentropy", "KLD"],
        ("Binary_Crossentropi", "binary_crossentropy"),
    ),
    "optimizers": (
        optimizers,
        [optimizers.SGD(0.1, momentum=0.9), optimizers.Adam(learning_rate=SCHEDULE, clipnorm=1.0)],
        ["sgd", "Adam", "RMSPROP"],
        ("RMSProb", "rmsprop"),
    ),
    "schedules": (
        schedules,
        [SCHEDULE, schedules.CosineDecay(0.1, 100, alpha=0.1)],
        [],  # every schedule needs its initial rate: no name alone makes one
        ("Step_Decai", "step_decay"),
    ),
    "metrics": (
        metrics,
        [metrics.BinaryAccuracy(), metrics.MeanSquaredError()],
        ["mae", "MSE", "Sparse_Categorical_Accuracy"],
        ("Acuracy", "accuracy"),
    ),
    "layers": (
        layers,
        [
            layers.Dense(3, activation="elu", use_bias=False, kernel_initializer="he_normal"),
            layers.Activation("leaky_relu", alpha=0.3),
            layers.LeakyReLU(0.2, name="leaky"),
            layers.PReLU(alpha_initializer=initializers.Constant(0.25)),
            layers.Dropout(0.3, seed=1, input_dim=4),
        ],
        ["relu", "Sigmoid", "SOFTMAX"],
        ("PReLux", "PReLU"),
    ),
}
CASES = list(FAMILIES.values())
IDS = list(FAMILIES)
INSTANCES = [(family, obj) for family, objs, _, _ in CASES for obj in objs]
INSTANCE_IDS = [repr(obj) for _, obj in INSTANCES]


@pytest.mark.parametrize(("family", "obj"), INSTANCES, ids=INSTANCE_IDS)
def test_get_of_serialize_round_trips(family, obj):
    saved = family.serialize(obj)
    assert saved == {"class_name": type(obj).__name__, "config": obj.get_config()}
    again = family.get(json.loads(json.dumps(saved)))  # JSON-ready, as in a model file
    assert type(again) is type(obj) and again is not obj
    assert again.get_config() == obj.get_config()
    assert type(obj).from_config(obj.get_config()).get_config() == obj.get_config()


@pytest.mark.parametrize(("family", "obj"), INSTANCES, ids=INSTANCE_IDS)
def test_repr_shows_the_config(family, obj):
    args = ", ".join(f"{k}={v!r}" for k, v in obj.get_config().items())
    assert repr(obj) == f"{type(obj).__name__}({args})"


def test_repr_examples():
    assert repr(optimizers.SGD(0.1, momentum=0.9)) == (
        "SGD(learning_rate=0.1, momentum=0.9, nesterov=False)"
    )
    assert repr(activations.get("elu", alpha=0.5)) == "ELU(alpha=0.5)"
    assert repr(losses.get("mse")) == "MeanSquaredError(reduction='mean')"
    assert repr(layers.ReLU(name="r")) == "ReLU(name='r')"
    assert repr(metrics.get("accuracy", task="sparse")) == "SparseCategoricalAccuracy()"


@pytest.mark.parametrize(("family", "objs", "names", "misspelt"), CASES, ids=IDS)
def test_get_returns_instances(family, objs, names, misspelt):
    base = family._REGISTRY.base
    for name in names:
        made = family.get(name)
        assert isinstance(made, base), name
        assert family.get(name) is not made  # a fresh one each time
    for obj in objs:
        assert family.get(obj) is obj
        assert isinstance(family.get(family.serialize(obj)), base)


@pytest.mark.parametrize(("family", "objs", "names", "misspelt"), CASES, ids=IDS)
def test_misspelt_names_get_a_suggestion(family, objs, names, misspelt):
    wrong, right = misspelt
    with pytest.raises(ValueError, match=f"Unknown .* '{wrong}'. Did you mean '{right}'"):
        family.get(wrong)
    cls = type(objs[0]).__name__
    wrong_class = cls[:-1] + cls[-1].swapcase()
    with pytest.raises(ValueError, match=f"Unknown .* '{wrong_class}'. Did you mean '{cls}'"):
        family.get({"class_name": wrong_class, "config": {}})


@pytest.mark.parametrize(("family", "objs", "names", "misspelt"), CASES, ids=IDS)
def test_other_types_are_refused(family, objs, names, misspelt):
    with pytest.raises(TypeError, match="must be a name, a config dict or a"):
        family.get(3.5)


def test_mixed_case_names_get_their_suggestion():
    with pytest.raises(ValueError, match="Unknown layer 'PRelu'. Did you mean 'PReLU'"):
        layers.from_config("PRelu", {})
    with pytest.raises(ValueError, match="Unknown layer 'leakyrelu_'. Did you mean 'LeakyReLU'"):
        layers.get("leakyrelu_")


def test_names_of_classes_with_arguments_ask_for_a_config():
    with pytest.raises(TypeError, match=r"layer 'Dense' needs arguments .*'units'.*config dict"):
        layers.get("Dense")
    with pytest.raises(TypeError, match="schedule 'step_decay' needs arguments"):
        schedules.get("step_decay")
    assert layers.get({"class_name": "Dense", "config": {"units": 4}}).units == 4
    assert isinstance(layers.get("ReLU"), layers.ReLU)


def test_metrics_accuracy_follows_the_task():
    assert type(metrics.get("accuracy", task="binary")) is metrics.BinaryAccuracy
    assert type(metrics.get("ACC", task="categorical")) is metrics.CategoricalAccuracy
    with pytest.raises(ValueError, match="accuracy needs a classification loss"):
        metrics.get("accuracy")


def test_layer_configs_keep_their_keys_and_old_files_load():
    dense = layers.Dense(3, activation="leaky_relu", name="d")
    assert set(dense.get_config()) == {
        "name", "units", "activation", "use_bias", "kernel_initializer", "bias_initializer"
    }  # fmt: skip
    old = {**dense.get_config(), "activation": {"name": "leaky_relu", "alpha": 0.01}}
    assert layers.from_config("Dense", old).get_config() == dense.get_config()
    old_act = {"name": "a", "activation": {"name": "elu", "alpha": 0.5}}
    again = layers.from_config("Activation", old_act)
    assert again.activation == activations.ELU(0.5)


def test_value_objects_compare_by_config_state_by_identity():
    assert initializers.get("he_normal") == initializers.HeNormal()
    assert activations.get("relu") == activations.ReLU()
    assert layers.Dense(2) != layers.Dense(2)  # layers hold weights: compared by identity
    assert isinstance(activations.ReLU(), _config.ConfigValue)


def test_a_model_rebuilt_from_layer_configs_computes_the_same(placement):
    x = np.random.default_rng(0).normal(size=(5, 4))
    stack = [
        layers.Dense(6, activation="relu", input_dim=4),
        layers.Activation("leaky_relu", alpha=0.3),
        layers.Dense(6),
        layers.ReLU(),
        layers.Dense(2, activation="softmax"),
    ]
    kw = {"backend": placement.name, "device": placement.device, "dtype": "float64", "seed": 0}
    model = xn.Sequential(stack, **kw)
    twin = xn.Sequential([layers.get(layers.serialize(layer)) for layer in stack], **kw)
    assert_close(twin.predict(x), xn.to_numpy(model.predict(x)))
