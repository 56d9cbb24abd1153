"""Saving and loading: any backend to any backend, atomic writes, no pickle."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet as xn
from helpers import assert_close
from xpnet import _backend, _saving, layers

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


def test_save_on_numpy_load_anywhere(tmp_path, placement):
    model = trained()
    path = tmp_path / "m.xpnet"
    model.save(path)
    loaded = xn.load_model(path, backend=placement.name, device=placement.device)
    assert loaded.backend == placement.name
    assert_close(loaded.predict(X), xn.to_numpy(model.predict(X)), rtol=1e-12)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # Training continues exactly as it would have without the round trip.
    a = model.fit(X, Y, epochs=1, shuffle=False, verbose=0).history["loss"]
    b = loaded.fit(X, Y, epochs=1, shuffle=False, verbose=0).history["loss"]
    assert b == pytest.approx(a, rel=1e-9)


def test_save_anywhere_load_on_numpy(tmp_path, placement):
    model = trained(placement.name, placement.device, dropout=True)
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

    monkeypatch.setattr(_saving, "write_npy", crash)
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


# ------------------------------------------------------------ damaged and malformed files
# Every one must be a ValueError that names the problem, raised before any
# large allocation, leaving the folder and the file as they were.


def unpack(path):
    """``(config, {array name: ndarray})`` of a saved model."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        arrays = {
            name: np.load(io.BytesIO(archive.read(f"arrays/{i}.npy")))
            for i, name in enumerate(config["arrays"])
        }
    return config, arrays


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def pack(path, config, arrays, compression=zipfile.ZIP_STORED):
    """Write a model file by hand: `config` (or raw bytes) and arrays in its listed order."""
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("config.json", raw)
        for i, name in enumerate(arrays):
            archive.writestr(f"arrays/{i}.npy", npy(arrays[name]))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.xpnet"
    trained().save(path)
    return path


def open_fds():
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def assert_refused(path, match, **kwargs):
    """Loading `path` raises ValueError matching `match` and leaves nothing behind."""
    listing = sorted(p.name for p in path.parent.iterdir())
    before, fds = path.read_bytes(), open_fds()
    with pytest.raises(ValueError, match=match) as info:
        xn.load_model(path, **kwargs)
    assert sorted(p.name for p in path.parent.iterdir()) == listing
    assert path.read_bytes() == before
    assert open_fds() == fds
    return info.value


def refused_with_peak(path, match):
    """:func:`assert_refused`, returning the peak traced memory of the load."""
    tracemalloc.start()
    try:
        assert_refused(path, match)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def member_offset(data, name):
    """Where member `name`'s bytes start in the zip `data`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start = archive.getinfo(name).header_offset
    name_len, extra_len = np.frombuffer(data[start + 26 : start + 30], dtype="<u2")
    return start + 30 + int(name_len) + int(extra_len)


def flip_in_member(name, at):
    def damage(data):
        pos = member_offset(data, name) + at
        return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]

    return damage


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (flip_in_member("arrays/0.npy", 140), r"arrays/0\.npy: Bad CRC-32"),
        (flip_in_member("arrays/7.npy", 130), r"arrays/7\.npy: Bad CRC-32"),
        (flip_in_member("config.json", 40), r"config\.json: Bad CRC-32"),
        (lambda data: data[: len(data) // 2], "not an xpnet model file"),
        (lambda data: data[:-1], "not an xpnet model file"),
        (lambda data: b"hello, world", "not an xpnet model file"),
        (lambda data: b"", "not an xpnet model file"),
        (lambda data: b"PK\x05\x06" + bytes(18), "missing member config.json"),
    ],
    ids=[
        "crc-kernel",
        "crc-state",
        "crc-config",
        "half",
        "last-byte-cut",
        "text",
        "empty",
        "empty-zip",
    ],
)
def test_damaged_bytes_are_refused(saved, damage, match):
    saved.write_bytes(damage(saved.read_bytes()))
    assert_refused(saved, match)


def test_a_damaged_file_is_refused_on_every_backend(saved, placement):
    saved.write_bytes(flip_in_member("arrays/1.npy", 130)(saved.read_bytes()))
    assert_refused(saved, "Bad CRC-32", backend=placement.name, device=placement.device)


def test_members_that_do_not_match_the_listing(saved):
    config, arrays = unpack(saved)
    cases = [  # (what to write, expected message)
        (dict(list(arrays.items())[:-1]), r"missing member\(s\) \['arrays/14\.npy'\]"),
        ({**arrays, "x": np.zeros(2)}, r"\['arrays/15\.npy'\] are not listed"),
    ]
    for written, match in cases:
        pack(saved, config, written)
        assert_refused(saved, match)
    pack(saved, config, arrays)
    with zipfile.ZipFile(saved, "a") as archive:
        archive.writestr("notes.txt", "hi")
    assert_refused(saved, r"\['notes\.txt'\] are not listed")
    pack(saved, config, arrays)
    with zipfile.ZipFile(saved, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("arrays/0.npy", npy(arrays["params/dense/kernel"]))
    assert_refused(saved, r"more than once: \['arrays/0\.npy'\]")
    pack(saved, config, arrays, zipfile.ZIP_DEFLATED)  # a bomb could inflate to anything
    assert_refused(saved, r"arrays/0\.npy is compressed")
    with zipfile.ZipFile(saved, "w") as archive:
        archive.writestr("arrays/0.npy", npy(arrays["params/dense/kernel"]))
    assert_refused(saved, "missing member config.json")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"{not json", "config.json is not valid JSON"),
        (b"\xff\xfe\x00garbage", "config.json is not valid JSON"),
        (b"[" * 100_000, "config.json is not valid JSON"),
        (b"[1, 2]", "config.json holds a list, not an object"),
        (b'"model"', "config.json holds a str, not an object"),
        (b"null", "config.json holds a NoneType, not an object"),
    ],
    ids=["syntax", "not-utf8", "nested-deep", "list", "string", "null"],
)
def test_config_that_is_not_a_json_object(saved, raw, match):
    _, arrays = unpack(saved)
    pack(saved, raw, arrays)
    assert_refused(saved, match)


def _at(config, where):
    *parents, last = [int(k) if k.isdigit() else k for k in where.split(".")]
    for key in parents:
        config = config[key]
    return config, last


def setting(where, value):
    def edit(config):
        parent, key = _at(config, where)
        parent[key] = value

    return edit


def removing(where):
    def edit(config):
        parent, key = _at(config, where)
        del parent[key]

    return edit


LAYER0 = "model.layers.0.config"

MALFORMED = {  # id: (edit, expected message)
    "format": (setting("format", "zip"), "not an xpnet model file"),
    "no-version": (removing("version"), "config.json has no key 'version'"),
    "version-str": (setting("version", "2"), r"\['version'\] must be an int >= 1, got '2'"),
    "version-float": (setting("version", 1.0), r"\['version'\] must be an int >= 1, got 1\.0"),
    "version-bool": (setting("version", True), r"\['version'\] must be an int >= 1"),
    "version-0": (setting("version", 0), r"\['version'\] must be an int >= 1, got 0"),
    "version-newer": (setting("version", 2), "written by a newer xpnet"),
    "backend": (setting("backend", ["numpy"]), r"\['backend'\] must be a string or null"),
    "no-model": (removing("model"), "config.json has no key 'model'"),
    "layers-not-list": (setting("model.layers", {"0": 1}), r"\['layers'\] must be a list"),
    "layers-empty": (setting("model.layers", []), r"model\['layers'\] is empty"),
    "layer-not-object": (setting("model.layers.1", "PReLU"), r"\['layers'\]\[1\] must be an object"),
    "layer-no-class": (removing("model.layers.1.class_name"), "has no key 'class_name'"),
    "layer-class": (setting("model.layers.1.class_name", "PRelu"), "Unknown layer 'PRelu'"),
    "layer-config": (setting(LAYER0, [6]), r"\['config'\] must be an object"),
    "layer-name": (setting(f"{LAYER0}.name", 7), r"\['name'\] must be a string, got 7"),
    "units-str": (setting(f"{LAYER0}.units", "64"), r"\(Dense\): Dense units must be a positive int, got '64'"),
    "units-negative": (setting(f"{LAYER0}.units", -6), "units must be a positive int, got -6"),
    "units-float": (setting(f"{LAYER0}.units", 6.0), r"units must be a positive int, got 6\.0"),
    "units-missing": (removing(f"{LAYER0}.units"), "missing 1 required positional argument: 'units'"),
    "layer-unknown-key": (setting(f"{LAYER0}.colour", "red"), "unexpected keyword argument 'colour'"),
    "activation": (setting(f"{LAYER0}.activation", {"name": "rleu"}), "Unknown activation 'rleu'"),
    "activation-type": (setting(f"{LAYER0}.activation", 5), r"\(Dense\)"),
    "initializer": (setting(f"{LAYER0}.kernel_initializer", 3), "initializer must be a name"),
    "input-dim": (setting("model.input_dim", "4"), r"\['input_dim'\] must be an int >= 1"),
    "dtype": (setting("model.dtype", "float8"), "Unknown dtype 'float8'"),
    "seed": (setting("model.seed", -1), r"\['seed'\] must be an int >= 0"),
    "no-name": (removing("model.name"), "model has no key 'name'"),
    "arrays-not-list": (setting("arrays", "params"), r"\['arrays'\] must be a list"),
    "arrays-not-str": (setting("arrays.0", 0), r"\['arrays'\] must be a list of names"),
    "arrays-twice": (setting("arrays.1", "params/dense/kernel"), "listed more than once"),
    "array-kind": (setting("arrays.0", "weights/dense/kernel"), "neither params"),
    "params-order": (setting("arrays.0", "params/dense/bias"), "listed more than once"),
    "param-unknown": (setting("arrays.0", "params/dense/kernal"), r"unexpected \['dense/kernal'\]"),
    "compile": (setting("compile", []), r"\['compile'\] must be an object or null"),
    "loss": (setting("compile.loss", {"class_name": "Hinge"}), "Unknown loss 'Hinge'"),
    "loss-type": (setting("compile.loss", 3), r"compile\['loss'\] must be an object"),
    "lr": (setting("compile.optimizer.config.learning_rate", "fast"), "learning_rate must be a float"),
    "optimizer-arg": (setting("compile.optimizer.config.beta_3", 0.9), "unexpected keyword argument 'beta_3'"),
    "iterations": (setting("compile.iterations", -1), r"\['iterations'\] must be an int >= 0"),
    "metrics": (setting("compile.metrics", "accuracy"), r"\['metrics'\] must be a list"),
    "metric-name": (setting("compile.metrics", ["acuracy"]), "Unknown metric 'acuracy'"),
    "state-uncompiled": (setting("compile", None), "is optimizer state, but the model is not compiled"),
}  # fmt: skip


@pytest.mark.parametrize(("edit", "match"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_config(saved, edit, match):
    config, arrays = unpack(saved)
    edit(config)
    pack(saved, config, arrays)
    assert_refused(saved, match)


def test_huge_declared_layers_are_refused_before_any_allocation(saved):
    # A few kB that declare a 10**9 x 10**9 kernel (8 EB): refused from the
    # config and the .npy headers, before a single large array exists.
    config, arrays = unpack(saved)
    config["model"]["input_dim"] = 10**9
    config["model"]["layers"][0]["config"]["units"] = 10**9
    pack(saved, config, arrays)
    peak = refused_with_peak(
        saved,
        r"parameter dense/kernel has shape \(4, 6\), but the config implies "
        r"\(1000000000, 1000000000\)",
    )
    assert peak < 2**24
    assert saved.stat().st_size < 2**14


def test_a_forged_npy_header_cannot_ask_for_memory(saved):
    # The header claims 10**6 x 10**6 floats but the member holds 192 bytes:
    # reading it would allocate what the header says before finding out.
    config, arrays = unpack(saved)
    pack(saved, config, arrays)
    with zipfile.ZipFile(saved) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    raw = members["arrays/0.npy"]  # version 1.0 header: 10 bytes, then the dict, 128 in all
    text = raw[10:128].decode("latin1").replace("(4, 6)", "(1000000, 1000000)")
    members["arrays/0.npy"] = raw[:8] + len(text).to_bytes(2, "little") + text.encode() + raw[128:]
    with zipfile.ZipFile(saved, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    peak = refused_with_peak(
        saved,
        r"arrays/0\.npy \(params/dense/kernel\) declares shape \(1000000, 1000000\) "
        r"\(8000000000000 bytes of data\) but holds 192 bytes",
    )
    assert peak < 2**24


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("params/dense/kernel", np.zeros((5, 6)), r"parameter dense/kernel has shape \(5, 6\), but the config implies \(4, 6\)"),
        ("params/prelu/alpha", np.zeros(()), r"parameter prelu/alpha has shape \(\), but the config implies \(6,\)"),
        ("optimizer/dense/kernel/m", np.zeros((6, 4)), r"optimizer state dense/kernel/m has shape \(6, 4\), but parameter dense/kernel has shape \(4, 6\)"),
        ("optimizer/dense_1/bias/v", np.zeros((3, 1)), r"optimizer state dense_1/bias/v has shape \(3, 1\)"),
        ("params/dense/kernel", np.zeros((4, 6), dtype=np.int64), r"arrays/0\.npy \(params/dense/kernel\) has dtype '<i8'"),
        ("optimizer/dense/kernel/m", np.zeros((4, 6), dtype=np.complex128), r"has dtype '<c16'"),
    ],
    ids=["kernel", "alpha", "adam-m", "adam-v", "int-kernel", "complex-state"],
)  # fmt: skip
def test_arrays_of_the_wrong_shape_or_dtype(saved, name, value, match):
    config, arrays = unpack(saved)
    arrays[name] = value
    pack(saved, config, arrays)
    assert_refused(saved, match)


def test_optimizer_state_that_does_not_fit_the_optimizer(saved):
    config, arrays = unpack(saved)
    rename = {"optimizer/dense/kernel/m": "optimizer/dense/kernel/velocity"}
    cases = [
        (rename, r"optimizer state dense/kernel/velocity: the optimizer has no slot 'velocity'"),
        ({"optimizer/dense/bias/m": "optimizer/nope/bias/m"}, "for nope/bias, which is not a parameter"),
    ]  # fmt: skip
    for renames, match in cases:
        config["arrays"] = [renames.get(n, n) for n in unpack(saved)[0]["arrays"]]
        pack(saved, config, {renames.get(n, n): a for n, a in arrays.items()})
        assert_refused(saved, match)
    del arrays["optimizer/dense/kernel/v"]
    config["arrays"] = list(arrays)
    pack(saved, config, arrays)
    assert_refused(
        saved, r"optimizer state for dense/kernel has slots \['m'\], expected \['m', 'v'\]"
    )


def test_optimizer_state_is_loaded_in_the_model_dtype(tmp_path, placement):
    model = xn.Sequential([layers.Dense(3, input_dim=4)], dtype="float32", seed=0)
    model.compile(loss="mse", optimizer="adam")
    model.fit(X, X[:, :3], epochs=1, batch_size=10, verbose=0)
    path = tmp_path / "m.xpnet"
    model.save(path)
    config, arrays = unpack(path)
    pack(path, config, {n: a.astype(np.float64) for n, a in arrays.items()})  # a file may differ
    loaded = xn.load_model(path, backend=placement.name, device=placement.device)
    kernel = loaded.layers[0].params["kernel"]
    for slot in loaded.optimizer.state["dense/kernel"].values():
        assert slot.dtype == kernel.dtype
    loaded.fit(X, X[:, :3], epochs=1, batch_size=10, verbose=0)  # the state mixes in cleanly


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    model = trained()
    old = os.umask(umask)
    try:
        model.save(tmp_path / "m.xpnet")
        model.save(tmp_path / "m.xpnet")  # replacing keeps them too
    finally:
        os.umask(old)
    assert (tmp_path / "m.xpnet").stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["m.xpnet"]


# Any damage at all: either refused with a ValueError, or (a flip in a byte
# the format does not use, such as a timestamp) the very same model.
@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """``(path, bytes, weights)`` of a saved model that no test changes."""
    path = tmp_path_factory.mktemp("good") / "m.xpnet"
    model = trained()
    model.save(path)
    return path, path.read_bytes(), model.get_weights()


def load_or_refuse(path, weights):
    try:
        loaded = xn.load_model(path)
    except ValueError:
        return
    for a, b in zip(loaded.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_byte_damage_is_refused_or_harmless(tmp_path, good_file, data):
    _, raw, weights = good_file
    pos = data.draw(st.integers(0, len(raw) - 1), label="position")
    if data.draw(st.booleans(), label="truncate"):
        damaged = raw[:pos]
    else:
        damaged = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1 :]
    path = tmp_path / "m.xpnet"
    path.write_bytes(damaged)
    load_or_refuse(path, weights)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def json_paths(node, prefix=()):
    yield prefix
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        yield from json_paths(child, (*prefix, key))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_config_edit_is_refused_or_loads(tmp_path, good_file, data):
    config, arrays = unpack(good_file[0])
    where = data.draw(st.sampled_from(list(json_paths(config))[1:]), label="where")
    parent = config
    for key in where[:-1]:
        parent = parent[key]
    if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON, label="value")
    path = tmp_path / "m.xpnet"
    pack(path, config, arrays)
    with contextlib.suppress(ValueError):  # anything else is a bug
        xn.load_model(path)


# ------------------------------------------------------------ weights files


def bn_net(backend=None, device=None, seed=0, **kw):
    model = xn.Sequential(
        [
            layers.Input(shape=(4,)),
            layers.Dense(5, activation="relu"),
            layers.BatchNormalization(**kw),
            layers.Dense(3, activation="softmax"),
        ],
        backend=backend, device=device, dtype="float64", seed=seed,
    )  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def assert_same_weights(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_weights_round_trip_to_any_backend(tmp_path, placement):
    model = bn_net()
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "m.weights.npz"
    model.save_weights(path)
    other = bn_net(placement.name, placement.device, seed=9)
    other.load_weights(path)
    assert_same_weights(model.get_weights(), other.get_weights())
    assert_close(other.predict(X), xn.to_numpy(model.predict(X)), rtol=1e-12)
    assert _backend.device_of(other.layers[1].buffers["moving_mean"]) == placement.device
    host = bn_net(seed=9)  # built on the host, not placed yet: loads there
    host.load_weights(path)
    assert host.placement is None
    assert_same_weights(model.get_weights(), host.get_weights())
    placed = bn_net(placement.name, placement.device)  # and back from anywhere
    placed.set_weights(model.get_weights())
    placed.save_weights(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()


def test_a_weights_file_is_a_plain_npz(tmp_path):
    model = bn_net()
    model.save_weights(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as found:
        assert list(found.keys()) == [
            "dense/kernel", "dense/bias", "batch_normalization/gamma",
            "batch_normalization/beta", "batch_normalization/moving_mean",
            "batch_normalization/moving_variance", "dense_1/kernel", "dense_1/bias",
        ]  # fmt: skip
        assert_same_weights(model.get_weights(), [found[k] for k in found])
    with zipfile.ZipFile(tmp_path / "w.npz") as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


def test_a_crash_mid_save_weights_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    model = bn_net()
    model.save_weights(path)
    before = path.read_bytes()
    model.fit(X, Y, epochs=1, verbose=0)

    def crash(fileobj, array):
        raise OSError("disk full")

    monkeypatch.setattr(_saving, "write_npy", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_weights_files_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        bn_net().save_weights(tmp_path / "w.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o640


def _other_nets():
    bigger = xn.Sequential([layers.Dense(5, input_dim=4), layers.Dense(3)], seed=0)
    renamed = bn_net()
    renamed.layers[0].name = "hidden"
    fewer = bn_net(center=False)  # no beta
    wider = xn.Sequential(
        [layers.Dense(6, input_dim=4), layers.BatchNormalization(), layers.Dense(3)], seed=0
    )
    return {
        "count": (bigger, r"the file holds 8 weights and the model has 4"),
        "names": (renamed, r"missing \['hidden/kernel', 'hidden/bias'\], unexpected"),
        "fewer": (fewer, r"unexpected \['batch_normalization/beta'\]"),
        "shape": (wider, r"weight dense/kernel has shape \(4, 5\) in the file and \(4, 6\)"),
    }


@pytest.mark.parametrize("case", ["count", "names", "fewer", "shape"])
def test_weights_of_another_model_are_refused_and_change_nothing(tmp_path, case):
    path = tmp_path / "w.npz"
    bn_net().save_weights(path)
    model, match = _other_nets()[case]
    before = model.get_weights()
    with pytest.raises(ValueError, match="does not match the model: .*" + match):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights())


def _rewrite(path, edit):
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members = edit(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


DAMAGED_WEIGHTS = {
    "truncated": (lambda raw: raw[: len(raw) // 2], "not an xpnet weights file"),
    "text": (lambda raw: b"not a zip", "not an xpnet weights file"),
    "crc": (flip_in_member("dense/kernel.npy", 140), r"dense/kernel\.npy: Bad CRC-32"),
}


@pytest.mark.parametrize("case", DAMAGED_WEIGHTS, ids=list(DAMAGED_WEIGHTS))
def test_damaged_weights_files_are_refused(tmp_path, case):
    damage, match = DAMAGED_WEIGHTS[case]
    path = tmp_path / "w.npz"
    bn_net().save_weights(path)
    path.write_bytes(damage(path.read_bytes()))
    model = bn_net(seed=4)
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights())


MALFORMED_WEIGHTS = {
    "pickled": (
        lambda m: {**m, "dense/bias.npy": npy(np.array([{"a": 1}] * 5, dtype=object))},
        "allow_pickle",
    ),
    "int": (lambda m: {**m, "dense/bias.npy": npy(np.zeros(5, np.int64))}, "has dtype '<i8'"),
    "extra": (lambda m: {**m, "notes.txt": b"hi"}, r"\['notes\.txt'\] are not \.npy arrays"),
    "forged": (
        lambda m: {
            **m,
            "dense/bias.npy": m["dense/bias.npy"].replace(b"(5,)", b"(9999999999,)")[:-40],
        },
        "declares shape",
    ),
}


@pytest.mark.parametrize("case", MALFORMED_WEIGHTS, ids=list(MALFORMED_WEIGHTS))
def test_malformed_weights_files_are_refused(tmp_path, case):
    edit, match = MALFORMED_WEIGHTS[case]
    path = tmp_path / "w.npz"
    bn_net().save_weights(path)
    _rewrite(path, edit)
    model = bn_net(seed=4)
    before = model.get_weights()
    with pytest.raises(ValueError, match="damaged or malformed xpnet weights file: .*" + match):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights())


def test_compressed_weights_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    bn_net().save_weights(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"dense/kernel\.npy is compressed"):
        bn_net().load_weights(path)


def test_weights_need_a_built_model_with_unique_names(tmp_path):
    unbuilt = xn.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not built yet"):
        unbuilt.save_weights(tmp_path / "w.npz")
    bn_net().save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="not built yet"):
        unbuilt.load_weights(tmp_path / "w.npz")
    twins = xn.Sequential(
        [layers.Dense(2, input_dim=2, name="d"), layers.Dense(2, name="d")], seed=0
    )
    with pytest.raises(ValueError, match=r"weights \['d/bias', 'd/kernel'\] appear twice"):
        twins.save_weights(tmp_path / "twins.npz")
    assert not (tmp_path / "twins.npz").exists()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_weights_damage_is_refused_or_harmless(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("w")
    model = bn_net()
    model.save_weights(folder / "w.npz")
    raw = (folder / "w.npz").read_bytes()
    pos = data.draw(st.integers(0, len(raw) - 1), label="position")
    if data.draw(st.booleans(), label="truncate"):
        damaged = raw[:pos]
    else:
        damaged = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1 :]
    (folder / "w.npz").write_bytes(damaged)
    other = bn_net(seed=3)
    before = other.get_weights()
    try:
        other.load_weights(folder / "w.npz")
    except ValueError:
        assert_same_weights(before, other.get_weights())
    else:
        assert_same_weights(model.get_weights(), other.get_weights())


# ------------------------------------------------------------ new layers and settings in model files


def test_an_unplaced_model_saves_and_loads_unplaced(tmp_path, placement):
    model = bn_net(momentum=0.5)  # built at construction, on the host
    path = tmp_path / "m.xpnet"
    model.save(path)
    loaded = xn.load_model(path)
    assert loaded.placement is None and loaded.built
    assert loaded.get_config() == model.get_config()
    assert_same_weights(model.get_weights(), loaded.get_weights())
    x = _backend.asarray(X, placement, "float64")
    a = loaded.fit(x, _backend.asarray(Y, placement), epochs=2, shuffle=False, verbose=0)
    b = model.fit(X, Y, epochs=2, shuffle=False, verbose=0)
    assert loaded.backend == placement.name
    assert a.history["loss"] == pytest.approx(b.history["loss"], rel=1e-9)


def test_a_first_layer_input_dim_that_contradicts_the_model_is_refused(tmp_path):
    model = xn.Sequential([layers.Dense(3, input_dim=4)], seed=0)
    path = tmp_path / "m.xpnet"
    model.save(path)
    config, arrays = unpack(path)
    config["model"]["layers"][0]["config"]["input_dim"] = 5
    pack(path, config, arrays)
    assert_refused(path, r"model\['input_dim'\] is 4 but its first layer's is 5")
