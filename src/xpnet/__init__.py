"""xpnet: neural networks written once against the Python array API.

The same code trains on NumPy, CuPy, PyTorch, JAX and array-api-strict.

>>> import xpnet as xn
>>> xn.F.relu(xn.to_numpy([-1.0, 3.0]))
array([0., 3.])
"""

from xpnet import (
    activations,
    callbacks,
    functional,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    regularizers,
    schedules,
)
from xpnet._backend import available_backends, backend, get_backend, set_backend, to_numpy
from xpnet.gradcheck import gradcheck
from xpnet.io import load_model
from xpnet.layers import Input
from xpnet.model import Sequential

F = functional


def __getattr__(name: str):
    # xpnet.models needs scikit-learn, an optional extra: imported on first
    # use (``xn.models.MLPClassifier``), so ``import xpnet`` works without it.
    if name in ("models", "distributed"):
        import importlib

        return importlib.import_module(f"xpnet.{name}")
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "models", "distributed"])


__version__ = "0.1.0"

__all__ = [
    "F",
    "Input",
    "Sequential",
    "__version__",
    "activations",
    "available_backends",
    "backend",
    "callbacks",
    "functional",
    "get_backend",
    "gradcheck",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "regularizers",
    "schedules",
    "set_backend",
    "to_numpy",
]
