"""The same network in plain PyTorch with autograd: xpnet must agree to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import layers

torch = pytest.importorskip("torch")

rng = np.random.default_rng(4)
X = rng.normal(size=(16, 5))
Y = rng.integers(0, 3, size=16)


def _torch_net(weights, kind):
    w1, b1, w2, b2 = (torch.tensor(w, requires_grad=True) for w in weights)
    params = [w1, b1, w2, b2]
    if kind == "sgd":
        opt = torch.optim.SGD(params, lr=0.1)
    elif kind == "momentum":
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    elif kind == "nesterov":
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    else:
        opt = torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), eps=1e-30)
    x, y = torch.tensor(X), torch.tensor(Y)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        hidden = torch.tanh(x @ w1 + b1)
        loss = torch.nn.functional.cross_entropy(hidden @ w2 + b2, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy() for p in params]


OPTIMIZERS = {
    "sgd": lambda: xn.optimizers.SGD(0.1),
    "momentum": lambda: xn.optimizers.SGD(0.1, momentum=0.9),
    "nesterov": lambda: xn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    # Keras adds epsilon to sqrt(v), PyTorch to the bias-corrected sqrt(v_hat);
    # with a negligible epsilon both rules are the same.
    "adam": lambda: xn.optimizers.Adam(0.01, epsilon=1e-30),
}


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_ten_steps_match_plain_pytorch(kind, placement):
    model = xn.Sequential(
        [layers.Dense(6, activation="tanh"), layers.Dense(3, activation="softmax")],
        backend=placement.name, device=placement.device, dtype="float64", seed=11,
    )  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer=OPTIMIZERS[kind]())
    model.build(5)
    expected_losses, expected_weights = _torch_net(model.get_weights(), kind)
    losses = [model.train_on_batch(X, Y) for _ in range(10)]
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-9)
    for ours, theirs in zip(model.get_weights(), expected_weights, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
