"""End to end: real learning problems on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import layers

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def test_mlp_learns_digits(digits, placement):
    x_train, y_train, x_test, y_test = digits
    model = xn.Sequential(
        [layers.Dense(64, activation="relu", kernel_initializer="he_normal"), layers.Dense(10)],
        backend=placement.name, device=placement.device, seed=0,
    )  # fmt: skip
    model.compile(
        loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=xn.optimizers.Adam(0.003),
        metrics=["accuracy"],
    )
    history = model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    assert accuracy >= 0.96
    predicted = np.argmax(xn.to_numpy(model.predict(x_test)), axis=1)
    assert (predicted == y_test).mean() == pytest.approx(accuracy)


def test_tanh_network_learns_xor(placement):
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    model = xn.Sequential(
        [layers.Dense(4, activation="tanh", input_dim=2), layers.Dense(1, activation="sigmoid")],
        backend=placement.name, device=placement.device, seed=1,
    )  # fmt: skip
    model.compile(
        loss="binary_crossentropy",
        optimizer=xn.optimizers.SGD(0.5, momentum=0.9),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=300, batch_size=4, verbose=0)
    assert model.evaluate(x, y)["accuracy"] == 1.0
    p = xn.to_numpy(model.predict(x))[:, 0]
    assert np.all((p > 0.5) == (y > 0.5))
