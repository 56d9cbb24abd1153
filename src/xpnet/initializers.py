"""Weight initializers with Keras semantics.

Random initializers draw on the host from a :class:`numpy.random.Generator`
in float64 and move the result to the placement backend once, so one seed gives
the same initial weights on every backend and device.

The variance-scaling family picks the spread from the fans of the shape
(``fan_in`` inputs and ``fan_out`` outputs of a ``(in, out)`` kernel):

=================  =========  ========  ==========================================
initializer        scale      fan       distribution
=================  =========  ========  ==========================================
``GlorotUniform``  1          average   uniform, limit ``sqrt(3 * scale / fan)``
``GlorotNormal``   1          average   truncated normal, ``std = sqrt(scale/fan)``
``HeNormal``       2          in        truncated normal
``HeUniform``      2          in        uniform
``LecunNormal``    1          in        truncated normal
``LecunUniform``   1          in        uniform
=================  =========  ========  ==========================================

Examples
--------
>>> from xpnet import initializers
>>> w = initializers.get("he_normal")((4, 3), rng=0)
>>> w.shape, str(w.dtype)
((4, 3), 'float32')
"""

from __future__ import annotations

import math
from typing import Any

from xpnet import _config
from xpnet._backend import Backend, asarray, filled, float_dtype, get_backend, host_rng
from xpnet._typing import Array, DType
from xpnet._validation import check_choice

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "RandomNormal",
    "RandomUniform",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "get",
    "serialize",
]

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it
# gives the truncated draw the variance the scaling rule asks for.
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of `shape`.

    ``(in, out)`` kernels give ``(in, out)``; a vector gives its length twice;
    a scalar gives 1; for more dimensions the leading ones form the receptive
    field that multiplies both fans, as in Keras.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer(_config.ConfigValue):
    """Base class: ``init(shape, dtype=None, *, rng=None, backend=None, device=None)``.

    Parameters of the call
    ----------------------
    shape : tuple of int
    dtype : str or dtype, optional
        A floating dtype; float32 by default.
    rng : int or numpy.random.Generator, optional
        The host generator (or a seed for one). A model passes its own so
        that each layer draws the next numbers; without it the initializer's
        own ``seed`` is used.
    backend : str or Backend, optional
        Where the result lives; the default backend when omitted.
    device : optional
        Device on that backend.
    """

    def __call__(
        self,
        shape: tuple[int, ...] | int,
        dtype: str | DType | None = None,
        *,
        rng: Any = None,
        backend: str | Backend | None = None,
        device: Any = None,
    ) -> Array:
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"shape must be non-negative, got {shape}")
        placement = backend if isinstance(backend, Backend) else get_backend(backend, device)
        dtype = float_dtype(placement.xp, dtype)
        return self._generate(shape, dtype, rng, placement)

    def _generate(
        self, shape: tuple[int, ...], dtype: DType, rng: Any, placement: Backend
    ) -> Array:
        raise NotImplementedError


class Constant(Initializer):
    """Every entry equal to `value`."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def _generate(self, shape, dtype, rng, placement):
        return filled(shape, self.value, dtype, placement)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    """All zeros: the classic choice for biases (and for linear models)."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    """All ones."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def get_config(self):
        return {}


class _RandomInitializer(Initializer):
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def _generate(self, shape, dtype, rng, placement):
        gen = host_rng(self.seed if rng is None else rng)
        return asarray(self._sample(shape, gen), placement, dtype)

    def _sample(self, shape, gen):
        raise NotImplementedError

    def get_config(self):
        return {"seed": self.seed}


class RandomUniform(_RandomInitializer):
    """Uniform on ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        if not maxval > minval:
            raise ValueError(f"maxval must exceed minval, got minval={minval}, maxval={maxval}")
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _sample(self, shape, gen):
        return gen.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class RandomNormal(_RandomInitializer):
    """Normal with the given `mean` and `stddev`."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        if not stddev >= 0:
            raise ValueError(f"stddev must be non-negative, got {stddev}")
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _sample(self, shape, gen):
        return gen.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


def _truncated_normal(gen, shape, stddev):
    """Normal draws with every value beyond 2 standard deviations redrawn."""
    out = gen.standard_normal(size=shape)
    flat = out.reshape(-1)
    bad = abs(flat) > 2.0
    while bad.any():  # each pass keeps ~95 % of what it redraws
        flat[bad] = gen.standard_normal(size=int(bad.sum()))
        bad = abs(flat) > 2.0
    return out * stddev


class VarianceScaling(Initializer):
    """Draws with variance ``scale / fan`` (Keras's ``VarianceScaling``).

    Parameters
    ----------
    scale : float
    mode : {"fan_in", "fan_out", "fan_avg"}
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}
    seed : int, optional
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = float(scale)
        self.mode = check_choice("mode", mode, self._MODES)
        self.distribution = check_choice("distribution", distribution, self._DISTRIBUTIONS)
        self.seed = seed

    def _generate(self, shape, dtype, rng, placement):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        gen = host_rng(self.seed if rng is None else rng)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            host = gen.uniform(-limit, limit, size=shape)
        elif self.distribution == "truncated_normal":
            host = _truncated_normal(gen, shape, math.sqrt(variance) / _TRUNCATED_STD)
        else:
            host = gen.normal(0.0, math.sqrt(variance), size=shape)
        return asarray(host, placement, dtype)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed settings, configured by its seed only."""

    _settings: tuple[float, str, str]

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(*self._settings, seed=seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """Xavier/Glorot uniform: limit ``sqrt(6 / (fan_in + fan_out))``."""

    _settings = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Xavier/Glorot normal: truncated, std ``sqrt(2 / (fan_in + fan_out))``."""

    _settings = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_Preset):
    """He normal (for ReLU): truncated, std ``sqrt(2 / fan_in)``."""

    _settings = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    """He uniform: limit ``sqrt(6 / fan_in)``."""

    _settings = (2.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """LeCun normal (for SELU-like units): truncated, std ``sqrt(1 / fan_in)``."""

    _settings = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """LeCun uniform: limit ``sqrt(3 / fan_in)``."""

    _settings = (1.0, "fan_in", "uniform")


_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_uniform": RandomUniform,
    "random_normal": RandomNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
}
_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal"}
_REGISTRY = _config.Registry("initializer", Initializer, _BY_NAME, _ALIASES)


def get(identifier: str | Initializer | dict[str, Any]) -> Initializer:
    """Return an initializer for a snake_case name, a config dict
    ``{"class_name": ..., "config": {...}}``, or an :class:`Initializer`.

    Raises ValueError for an unknown name, suggesting the closest valid one.
    """
    return _REGISTRY.get(identifier)


def serialize(initializer: Initializer) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `initializer`."""
    return _config.serialize(initializer)
