"""Keras-style loss classes in xpnet.losses over masked (-inf) logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close, assert_like

INF = math.inf
LOGITS = [[-INF, 1.0, 2.0], [1e4, -INF, -1e4], [0.5, -INF, -INF]]
LABELS = [2, 0, 0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_categorical_from_logits_with_masked_classes_matches_sparse(dtype, make, xp):
    z = make(LOGITS, dtype)
    dense = xn.losses.CategoricalCrossentropy(from_logits=True, reduction="none")
    sparse = xn.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    a, ga = dense.compute(make(np.eye(3)[LABELS], dtype), z)
    b, gb = sparse.compute(make(LABELS, "int64"), z)
    assert_like(a, z)
    assert_like(ga, z)
    assert bool(xp.all(xp.isfinite(a))) and bool(xp.all(xp.isfinite(ga)))
    tol = {"rtol": 2e-6, "atol": 1e-7} if dtype == "float32" else {"rtol": 1e-12}
    assert_close(a, xn.to_numpy(b), **tol)
    assert_close(ga, xn.to_numpy(gb), **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_from_logits_at_infinite_logits_is_exact(dtype, make):
    loss = xn.losses.BinaryCrossentropy(from_logits=True, reduction="none")
    z = make([[-INF], [INF], [-INF]], dtype)
    value, grad = loss.compute(make([0.0, 1.0, 1.0], dtype), z)
    assert_like(grad, z)
    assert_close(value, [0.0, 0.0, INF], rtol=0)
    assert_close(grad, [[0.0], [0.0], [-1.0]], rtol=0)
