"""Initializers: Keras semantics, statistics, seeding across backends, names."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import _backend, initializers

ALL_NAMES = [
    "zeros",
    "ones",
    "constant",
    "random_uniform",
    "random_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "xavier_uniform",
    "xavier_normal",
]


@pytest.mark.parametrize(
    ("shape", "fans"),
    [((), (1, 1)), ((7,), (7, 7)), ((3, 5), (3, 5)), ((2, 3, 4, 5), (24, 30))],
)
def test_compute_fans(shape, fans):
    assert initializers.compute_fans(shape) == fans


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_name_builds_on_every_backend(name, placement):
    w = initializers.get(name)((8, 6), rng=0, backend=placement)
    assert tuple(w.shape) == (8, 6)
    assert w.dtype == placement.xp.float32
    assert _backend.device_of(w) == placement.device


@pytest.mark.parametrize("name", ALL_NAMES)
def test_one_seed_gives_the_same_numbers_on_every_backend(name, placement):
    reference = xn.to_numpy(initializers.get(name)((5, 4), "float64", rng=42, backend="numpy"))
    here = xn.to_numpy(initializers.get(name)((5, 4), "float64", rng=42, backend=placement))
    np.testing.assert_array_equal(here, reference)


def test_seeded_initializer_repeats_and_seeds_differ():
    a = xn.to_numpy(initializers.GlorotUniform(seed=1)((4, 4)))
    b = xn.to_numpy(initializers.GlorotUniform(seed=1)((4, 4)))
    c = xn.to_numpy(initializers.GlorotUniform(seed=2)((4, 4)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_shared_generator_advances():
    gen = _backend.host_rng(0)
    a = xn.to_numpy(initializers.HeNormal()((3, 3), rng=gen))
    b = xn.to_numpy(initializers.HeNormal()((3, 3), rng=gen))
    assert not np.array_equal(a, b)


def test_constants(placement):
    assert np.all(xn.to_numpy(initializers.Zeros()((2, 3), backend=placement)) == 0)
    assert np.all(xn.to_numpy(initializers.Ones()((2, 3), backend=placement)) == 1)
    assert np.all(xn.to_numpy(initializers.Constant(0.25)((4,), backend=placement)) == 0.25)


FAN_IN, FAN_OUT = 400, 600


def _sample(init):
    return xn.to_numpy(init((FAN_IN, FAN_OUT), "float64", rng=0))


@pytest.mark.parametrize(
    ("init", "limit"),
    [
        (initializers.GlorotUniform(), math.sqrt(6 / (FAN_IN + FAN_OUT))),
        (initializers.HeUniform(), math.sqrt(6 / FAN_IN)),
        (initializers.LecunUniform(), math.sqrt(3 / FAN_IN)),
    ],
)
def test_uniform_scaling_limits_and_variance(init, limit):
    w = _sample(init)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    assert w.var() == pytest.approx(limit**2 / 3, rel=0.02)


@pytest.mark.parametrize(
    ("init", "std"),
    [
        (initializers.GlorotNormal(), math.sqrt(2 / (FAN_IN + FAN_OUT))),
        (initializers.HeNormal(), math.sqrt(2 / FAN_IN)),
        (initializers.LecunNormal(), math.sqrt(1 / FAN_IN)),
    ],
)
def test_truncated_normal_scaling(init, std):
    w = _sample(init)
    assert w.std() == pytest.approx(std, rel=0.02)  # truncation is compensated
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12
    assert abs(w.mean()) < 0.01 * std * 10


def test_random_uniform_and_normal():
    u = xn.to_numpy(initializers.RandomUniform(-0.5, 1.5)((1000, 100), "float64", rng=0))
    assert u.min() >= -0.5 and u.max() < 1.5
    assert u.mean() == pytest.approx(0.5, abs=0.01)
    n = xn.to_numpy(initializers.RandomNormal(2.0, 0.5)((1000, 100), "float64", rng=0))
    assert n.mean() == pytest.approx(2.0, abs=0.01) and n.std() == pytest.approx(0.5, rel=0.01)


def test_float64_on_request(placement):
    w = initializers.get("he_normal")((3, 2), "float64", rng=0, backend=placement)
    assert w.dtype == placement.xp.float64


def test_unknown_name_suggests():
    with pytest.raises(
        ValueError, match="Unknown initializer 'he_nromal'. Did you mean 'he_normal'"
    ):
        initializers.get("he_nromal")
    with pytest.raises(TypeError, match="initializer must be a name"):
        initializers.get(3)


def test_bad_parameters():
    with pytest.raises(ValueError, match="maxval must exceed minval"):
        initializers.RandomUniform(1.0, 0.0)
    with pytest.raises(ValueError, match="stddev must be non-negative"):
        initializers.RandomNormal(stddev=-1.0)
    with pytest.raises(ValueError, match="Unknown mode 'fan_inn'. Did you mean 'fan_in'"):
        initializers.VarianceScaling(mode="fan_inn")
    with pytest.raises(ValueError, match="shape must be non-negative"):
        initializers.Zeros()((-1, 2))
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        initializers.Zeros()((2, 2), "int32")


@pytest.mark.parametrize("name", ALL_NAMES)
def test_serialize_round_trip(name):
    init = initializers.get(name)
    again = initializers.get(initializers.serialize(init))
    assert again == init
    assert initializers.get(init) is init


def test_variance_scaling_untruncated():
    w = xn.to_numpy(
        initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")(
            (300, 500), "float64", rng=1
        )
    )
    assert w.std() == pytest.approx(math.sqrt(2 / 500), rel=0.02)
