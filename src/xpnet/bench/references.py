"""Reference implementations the benchmarks compare xpnet against.

They use the libraries directly, which is their point, and get them from
:func:`xpnet._backend.library` (the backend package stays the only
importer of array libraries): the same MLP written in plain PyTorch with
autograd, written by hand in NumPy (the overhead floor of a Python
training step), and scikit-learn's ``MLPClassifier`` trained with
``partial_fit``. Each builder returns
zero-argument callables; each call runs the phase once and returns
something to synchronize on.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

from xpnet._backend import library

np = library("numpy")

Phase = Callable[[], Any]


def torch_mlp(
    widths: tuple[int, ...], x: Any, y: Any, dtype: str, lr: float, device: Any
) -> dict[str, Phase]:
    """``torch.nn`` layers, ``F.cross_entropy``, autograd and ``optim.SGD``."""
    torch = library("torch")

    torch_dtype = getattr(torch, dtype)
    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(a, b, dtype=torch_dtype, device=device))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    tx = torch.as_tensor(x, dtype=torch_dtype, device=device)
    ty = torch.as_tensor(y, device=device)
    loss_fn = torch.nn.functional.cross_entropy

    def forward():
        with torch.no_grad():
            return loss_fn(net(tx), ty)

    def forward_backward():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(net(tx), ty)
        loss.backward()
        return loss

    def step():
        loss = forward_backward()
        opt.step()
        return loss

    return {"forward": forward, "forward_backward": forward_backward, "step": step}


def numpy_step(widths: tuple[int, ...], x: Any, y: Any, lr: float) -> Phase:
    """A careful hand-written NumPy step: forward, fused softmax-CE gradient,
    backward, in-place SGD. What a person would write for this one network."""
    rng = np.random.default_rng(0)
    dtype = x.dtype
    weights = [
        (rng.normal(size=(a, b)) * np.sqrt(2.0 / a)).astype(dtype)
        for a, b in itertools.pairwise(widths)
    ]
    biases = [np.zeros(b, dtype) for b in widths[1:]]
    rows = np.arange(len(y))
    n = len(y)

    def step():
        acts = [x]
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            z = acts[-1] @ w
            z += b
            np.maximum(z, 0, out=z)
            acts.append(z)
        z = acts[-1] @ weights[-1]
        z += biases[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[rows, y] -= 1.0
        z /= n
        dz = z
        for i in range(len(weights) - 1, -1, -1):
            grad_w = acts[i].T @ dz
            grad_b = dz.sum(axis=0)
            if i > 0:
                dz = dz @ weights[i].T
                dz *= acts[i] > 0
            grad_w *= lr
            weights[i] -= grad_w
            grad_b *= lr
            biases[i] -= grad_b
        return z

    return step


def jax_step(widths: tuple[int, ...], x: Any, y: Any, lr: float) -> Phase:
    """The same step written for JAX by hand: a loss function of the
    parameters, ``jax.grad``, the SGD update, all in one ``jax.jit`` with the
    parameters donated. What a JAX user would write for this one network."""
    jax = library("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(0)
    dtype = x.dtype
    params = [
        (
            jnp.asarray((rng.normal(size=(a, b)) * np.sqrt(2.0 / a)).astype(dtype)),
            jnp.zeros(b, dtype),
        )
        for a, b in itertools.pairwise(widths)
    ]
    tx, ty = jnp.asarray(x), jnp.asarray(y)

    def loss(params, x, y):
        a = x
        for w, b in params[:-1]:
            a = jax.nn.relu(a @ w + b)
        w, b = params[-1]
        logp = jax.nn.log_softmax(a @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @functools.partial(jax.jit, donate_argnums=0)
    def update(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    state = {"params": params}

    def step():
        state["params"] = update(state["params"], tx, ty)
        return state["params"]

    return step


def sklearn_step(widths: tuple[int, ...], x: Any, y: Any, lr: float) -> Phase:
    """scikit-learn's MLPClassifier, one ``partial_fit`` (one SGD step) per call."""
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=widths[1:-1], activation="relu", solver="sgd",
        learning_rate_init=lr, momentum=0.0, alpha=0.0, batch_size=len(y),
        random_state=0,
    )  # fmt: skip
    classes = np.arange(widths[-1])

    def step():
        clf.partial_fit(x, y, classes=classes)
        return None

    return step
