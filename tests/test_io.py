"""Saving and loading: any backend to any backend, atomic writes, no pickle."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import xpnet as xn
from conftest import assert_close
from xpnet import _backend, layers
from xpnet import io as xio

rng = np.random.default_rng(3)
X = rng.normal(size=(30, 4))
Y = rng.integers(0, 3, size=30)


def trained(backend="numpy", device=None, dropout=False):
    model = xn.Sequential(
        [
            layers.Dense(6, activation="elu", kernel_initializer="he_uniform"),
            layers.PReLU(),
            *([layers.Dropout(0.1, seed=2)] if dropout else []),  # its stream is not saved
            layers.Dense(3, activation="softmax"),
        ],
        backend=backend, device=device, dtype="float64", seed=1,
    )  # fmt: skip
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=xn.optimizers.Adam(xn.schedules.CosineDecay(0.01, 100), clipnorm=1.0),
        metrics=["accuracy"],
    )
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    return model


def test_save_on_numpy_load_anywhere(tmp_path, target):
    model = trained()
    path = tmp_path / "m.xpnet"
    model.save(path)
    loaded = xn.load_model(path, backend=target.name, device=target.device)
    assert loaded.backend == target.name
    assert_close(loaded.predict(X), xn.to_numpy(model.predict(X)), rtol=1e-12)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # Training continues exactly as it would have without the round trip.
    a = model.fit(X, Y, epochs=1, shuffle=False, verbose=0).history["loss"]
    b = loaded.fit(X, Y, epochs=1, shuffle=False, verbose=0).history["loss"]
    assert b == pytest.approx(a, rel=1e-9)


def test_save_anywhere_load_on_numpy(tmp_path, target):
    model = trained(target.name, target.device, dropout=True)
    path = tmp_path / "m.xpnet"
    model.save(path)
    loaded = xn.load_model(path, backend="numpy")
    assert_close(loaded.predict(X), xn.to_numpy(model.predict(X)), rtol=1e-12)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]


def test_default_backend_on_load_is_the_saved_one(tmp_path):
    pytest.importorskip("array_api_strict")
    trained("array_api_strict").save(tmp_path / "m.xpnet")
    assert xn.load_model(tmp_path / "m.xpnet").backend == "array_api_strict"


def test_a_crash_mid_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.xpnet"
    model = trained()
    model.save(path)
    before = path.read_bytes()
    model.fit(X, Y, epochs=1, verbose=0)  # new weights to save
    calls = []

    def crash(fileobj, array):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        _backend.write_npy(fileobj, array)

    monkeypatch.setattr(xio, "write_npy", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.xpnet"]  # no temporary left behind


def test_the_file_is_json_and_npy_without_pickle(tmp_path):
    path = tmp_path / "m.xpnet"
    trained().save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        assert config["format"] == "xpnet-model"
        names = archive.namelist()
    assert all(n == "config.json" or n.endswith(".npy") for n in names)
    assert config["arrays"][0] == "params/dense/kernel"


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.xpnet"
    trained().save(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    payload = io.BytesIO()
    np.save(payload, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    members["arrays/0.npy"] = payload.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="allow_pickle"):
        xn.load_model(path)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "x.xpnet"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not an xpnet model file"):
        xn.load_model(path)
    with pytest.raises(ValueError, match="not built"):
        xn.Sequential([layers.Dense(1)]).save(tmp_path / "y.xpnet")
