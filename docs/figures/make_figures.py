"""Make the guide's figures by running xpnet itself.

    python docs/figures/make_figures.py      # writes docs/figures/*.png

Needs matplotlib (pip install "xpnet[plot]").
"""

from __future__ import annotations

import pathlib
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import xpnet as xn
from xpnet import functional as F

HERE = pathlib.Path(__file__).parent


def save(fig, name):
    fig.tight_layout()
    fig.savefig(HERE / name, dpi=110)
    plt.close(fig)
    print("wrote", HERE / name)


def activations():
    x = np.linspace(-4, 4, 401)
    names = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "silu"]
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.5), sharex=True)
    for ax, name in zip(axes.ravel(), names, strict=True):
        f, df = getattr(F, name), getattr(F, name + "_backward")
        alpha = {"leaky_relu": {"alpha": 0.1}}.get(name, {})
        y = f(x, **alpha)
        ax.plot(x, y, label="f(x)")
        ax.plot(x, df(np.ones_like(x), x, y, **alpha), "--", label="f'(x)")
        ax.set_title(name + (" (alpha=0.1)" if alpha else ""))
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.suptitle("Each activation (solid) and the derivative its backward computes (dashed)")
    save(fig, "activations.png")


def learning_rates():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lr, label in [
        (0.001, "too small (0.001)"),
        (0.1, "about right (0.1)"),
        (3.0, "too large (3)"),
    ]:
        model = xn.Sequential(
            [xn.layers.Dense(32, activation="relu", kernel_initializer="he_normal"),
             xn.layers.Dense(10)], seed=0,
        )  # fmt: skip
        model.compile(
            loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=xn.optimizers.SGD(lr),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the diverging run must not warn
            history = model.fit(x, y, epochs=30, batch_size=64, verbose=0,
                                callbacks=[xn.callbacks.TerminateOnNaN()])  # fmt: skip
        losses = history.history["loss"]
        stopped = (
            f", stopped by TerminateOnNaN after epoch {len(losses)}" if len(losses) < 30 else ""
        )
        ax.plot(range(1, len(losses) + 1), losses, marker=".", label=label + stopped)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("SGD on digits: the learning rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "learning_rates.png")


def initialization():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(float)  # XOR-like quadrants
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, init in zip(axes, ["zeros", "he_normal"], strict=True):
        model = xn.Sequential(
            [xn.layers.Dense(8, activation="tanh", kernel_initializer=init),
             xn.layers.Dense(1, activation="sigmoid", kernel_initializer=init)], seed=0,
        )  # fmt: skip
        model.compile(
            loss="binary_crossentropy", optimizer=xn.optimizers.SGD(0.5), metrics=["accuracy"]
        )
        history = model.fit(x, y, epochs=200, batch_size=200, verbose=0)
        w = model.get_weights()[0]  # (2, 8): one column per hidden unit
        for unit in range(w.shape[1]):
            ax.plot(w[0, unit], w[1, unit], "o")
        distinct = len({tuple(np.round(col, 6)) for col in w.T})
        ax.set_title(
            f"{init}: {distinct} distinct hidden unit(s), "
            f"accuracy {history.history['accuracy'][-1]:.2f}"
        )
        ax.set_xlabel("weight from input 1")
        ax.set_ylabel("weight from input 2")
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Hidden-unit weights after 200 steps: zeros stay identical, He init breaks symmetry"
    )
    save(fig, "initialization.png")


def stability():
    z = np.linspace(-800, 800, 401)
    y = np.ones_like(z)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-z))
        naive = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    stable, _ = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(z, stable, lw=3, label="softplus form: softplus(z) - y z")
    finite = np.isfinite(naive)
    ax.plot(z[finite], naive[finite], "--", label="naive: -(y log p + (1-y) log(1-p))")
    bad = ~finite
    ax.plot(
        z[bad], np.zeros(bad.sum()), "rx", ms=4, label=f"naive gives inf/nan ({bad.sum()} points)"
    )
    ax.set_xlabel("logit z (target y = 1)")
    ax.set_ylabel("binary cross-entropy")
    ax.set_title("The naive form overflows at large |z|; the stable one is exact")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "stability.png")


def mse_vs_mae():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 60).reshape(-1, 1)
    y = 2 * x[:, 0] + 0.5 + rng.normal(0, 0.05, 60)
    y[::12] += 4.0  # outliers
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(x[:, 0], y, "k.", label="data (5 outliers)")
    for loss in ["mse", "mae"]:
        model = xn.Sequential([xn.layers.Dense(1)], dtype="float64", seed=0)
        model.compile(loss=loss, optimizer=xn.optimizers.SGD(0.1))
        model.fit(x, y, epochs=3000, batch_size=None, verbose=0)
        ax.plot(
            x[:, 0], xn.to_numpy(model.predict(x))[:, 0], lw=2, label=f"fit with {loss.upper()}"
        )
    ax.plot(x[:, 0], 2 * x[:, 0] + 0.5, ":", color="0.5", label="true line")
    ax.set_title("MSE is pulled by outliers; MAE follows the bulk")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "mse_vs_mae.png")


if __name__ == "__main__":
    activations()
    learning_rates()
    initialization()
    stability()
    mse_vs_mae()
