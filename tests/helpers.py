"""Assertions the test modules share."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from xpnet import _backend


def assert_like(out, like):
    """`out` has `like`'s library, dtype and device."""
    assert _backend.namespace(out) is _backend.namespace(like)
    assert out.dtype == like.dtype, (out.dtype, like.dtype)
    assert _backend.device_of(out) == _backend.device_of(like)


def assert_close(actual, expected, rtol=1e-12, atol=0.0):
    """`actual` equals `expected` to `rtol` / `atol`, as NumPy arrays."""
    np.testing.assert_allclose(xn.to_numpy(actual), xn.to_numpy(expected), rtol=rtol, atol=atol)


def assert_same_training(got, expected, model, reference, atol=1e-12):
    """Two trainings agree: the same history keys and values, and weights,
    to 1e-12 relative (`atol` absolute for the weights)."""
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=1e-12)
    for a, b in zip(reference.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=atol)
