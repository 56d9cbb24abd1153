"""ONNX export: what ONNX Runtime computes from the exported file is what
``predict`` / ``predict_proba`` return, for every layer, activation,
estimator and backend; the file is deterministic; bad requests are refused."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import _export

pytest.importorskip("ndonnx", reason='ONNX export needs ndonnx: pip install "xpnet[onnx]"')
onnx = pytest.importorskip("onnx", reason='ONNX export needs onnx: pip install "xpnet[onnx]"')
ort = pytest.importorskip("onnxruntime", reason="running exported files needs onnxruntime")

from helpers import assert_close  # noqa: E402

N_FEATURES = 5
BATCHES = (1, 7, 1000)
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def features(n, seed=1, dtype="float32"):
    return np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(dtype)


def session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # float16 graphs warn about kernels it casts around
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def assert_runtime_matches(path, reference, dtype, tolerance=None):
    """ONNX Runtime on one exported file equals `reference(x)` on fresh data
    of every batch size."""
    tol = TOLERANCE[dtype] if tolerance is None else tolerance
    runtime = session(path)
    for n in BATCHES:
        x = features(n, seed=100 + n, dtype=dtype)
        (got,) = runtime.run(None, {"x": x})
        expected = xn.to_numpy(reference(x))
        assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
        assert_close(got, expected, rtol=tol, atol=tol)


def trained(layers, dtype="float32", loss="mse", outputs=3, **placement):
    """`layers` fitted for a few epochs, so weights and moving statistics move."""
    model = xn.Sequential(layers, dtype=dtype, seed=0, **placement)
    model.compile(loss=loss, optimizer=xn.optimizers.Adam(0.01))
    x = features(64, seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    if loss == "mse":
        y = rng.normal(size=(64, outputs))
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (64, 1)) * 1.0
    else:
        y = rng.integers(0, outputs, 64)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model


def exported(model, tmp_path, name="model.onnx"):
    path = tmp_path / name
    model.export(path)
    return path


# ---------------------------------------------------------------- every layer, every activation

# How to make each layer class of xpnet.layers; any other is made with no
# arguments (a new layer that needs some fails here, and gets a line).
LAYER_FACTORIES = {
    "Dense": lambda: xn.layers.Dense(4, activation="tanh"),
    "Activation": lambda: xn.layers.Activation("elu"),
    "Dropout": lambda: xn.layers.Dropout(0.5),
    "LeakyReLU": lambda: xn.layers.LeakyReLU(alpha=0.2),
    "ELU": lambda: xn.layers.ELU(alpha=0.7),
    "PReLU": lambda: xn.layers.PReLU(alpha_initializer=xn.initializers.Constant(0.25)),
    "Input": lambda: xn.layers.Input(shape=(N_FEATURES,)),
    "BatchNormalization": lambda: xn.layers.BatchNormalization(momentum=0.5),
}


def layer_classes():
    base = xn.layers.Layer
    return sorted(
        name
        for name in xn.layers.__all__
        if isinstance(obj := getattr(xn.layers, name), type) and issubclass(obj, base)
        and obj is not base
    )  # fmt: skip


def network_around(layer):
    """`layer` between a Dense from the input and a Dense output."""
    if type(layer).__name__ == "Input":
        return [layer, xn.layers.Dense(6, activation="relu"), xn.layers.Dense(3)]
    return [xn.layers.Dense(6, input_dim=N_FEATURES), layer, xn.layers.Dense(3)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", layer_classes())
def test_every_layer(name, dtype, tmp_path):
    make = LAYER_FACTORIES.get(name, getattr(xn.layers, name))
    model = trained(network_around(make()), dtype)
    assert_runtime_matches(exported(model, tmp_path), model.predict, dtype)


def test_the_layer_list_covers_the_registry():
    assert {"Dense", "Activation", "PReLU", "Dropout", "ReLU", "Softmax"} <= set(layer_classes())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(xn.activations.ACTIVATIONS))
def test_every_activation(name, dtype, tmp_path):
    model = trained([xn.layers.Dense(6, activation=name, input_dim=N_FEATURES),
                     xn.layers.Dense(3, activation=name)], dtype)  # fmt: skip
    assert_runtime_matches(exported(model, tmp_path), model.predict, dtype)


@pytest.mark.parametrize(
    ("activation", "loss", "units"),
    [("softmax", "sparse_categorical_crossentropy", 4), ("sigmoid", "binary_crossentropy", 1)],
)
def test_fused_outputs_are_probabilities(activation, loss, units, tmp_path):
    layers = [xn.layers.Dense(8, activation="relu", input_dim=N_FEATURES),
              xn.layers.Dense(units, activation=activation)]  # fmt: skip
    model = trained(layers, loss=loss, outputs=units)
    assert model.fused
    assert_runtime_matches(exported(model, tmp_path), model.predict, "float32")
    (p,) = session(tmp_path / "model.onnx").run(None, {"x": features(9)})
    assert np.all((p >= 0) & (p <= 1))


def test_float16(tmp_path):
    model = trained([xn.layers.Dense(8, activation="gelu", input_dim=N_FEATURES),
                     xn.layers.Dense(3, activation="softmax")], "float16")  # fmt: skip
    # float16 rounds each step to 3 decimal digits, and ONNX Runtime's CPU
    # kernels round differently (some run in float32 between inserted casts):
    # equal to what float16 can tell apart, not to the last bit.
    assert_runtime_matches(exported(model, tmp_path), model.predict, "float16", 2e-2)


# ---------------------------------------------------------------- every backend


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_models_trained_on_every_backend(placement, dtype, tmp_path):
    layers = [
        xn.layers.Dense(16, activation="relu", input_dim=N_FEATURES),
        xn.layers.PReLU(),
        xn.layers.Dropout(0.2),
        xn.layers.Dense(8, activation="silu"),
        xn.layers.Dense(4, activation="softmax"),
    ]
    model = trained(layers, dtype, loss="sparse_categorical_crossentropy", outputs=4,
                    backend=placement.name, device=placement.device)  # fmt: skip
    assert_runtime_matches(exported(model, tmp_path), model.predict, dtype)


# ---------------------------------------------------------------- estimators


# id: (class in xpnet.models, its arguments, the target: classes or kind)
ESTIMATORS = {
    "LogisticRegression-2": ("LogisticRegression", {"learning_rate": 0.1}, 2),
    "LogisticRegression-3": ("LogisticRegression", {"learning_rate": 0.1}, 3),
    "SoftmaxRegression-2": ("SoftmaxRegression", {"learning_rate": 0.1}, 2),
    "MLPClassifier-2": ("MLPClassifier", {"hidden_layer_sizes": (8,)}, 2),
    "MLPClassifier-4": ("MLPClassifier", {"hidden_layer_sizes": (8, 6), "activation": "tanh"}, 4),
    "MLPClassifier-multilabel": ("MLPClassifier", {"hidden_layer_sizes": (8,)}, "labels"),
    "LinearRegression-1d": ("LinearRegression", {"learning_rate": 0.1}, "1d"),
    "LinearRegression-2d": ("LinearRegression", {"learning_rate": 0.1}, "2d"),
    "MLPRegressor-1d": ("MLPRegressor", {"hidden_layer_sizes": (8,)}, "1d"),
}


def fitted(estimator, target, dtype):
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(0)
    x = features(80, seed=0, dtype=dtype)
    if target == "1d":
        y = x @ rng.normal(size=N_FEATURES) + 0.1 * rng.normal(size=80)
    elif target == "2d":
        y = x @ rng.normal(size=(N_FEATURES, 2))
    elif target == "labels":
        y = (x[:, :3] + 0.3 * rng.normal(size=(80, 3)) > 0).astype("int64")
    else:
        y = np.array(["ant", "bee", "cat", "dog"])[rng.integers(0, target, 80)]
    with warnings.catch_warnings():  # a few epochs: the MLPs have not converged
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(ESTIMATORS))
def test_estimators(case, dtype, tmp_path):
    models = pytest.importorskip("xpnet.models", reason="the estimators need scikit-learn")
    name, kwargs, target = ESTIMATORS[case]
    est = fitted(getattr(models, name)(**kwargs, epochs=20, seed=0), target, dtype)
    assert est.model_.dtype == dtype  # scikit-learn's rule: float32 in, float32 model
    path = tmp_path / "est.onnx"
    est.export(path)
    reference = est.predict_proba if hasattr(est, "predict_proba") else est.predict
    assert_runtime_matches(path, reference, dtype)


@pytest.mark.parametrize("case", ["MLPClassifier-4", "MLPRegressor-1d"])
def test_estimators_trained_on_every_backend(case, placement, tmp_path):
    models = pytest.importorskip("xpnet.models", reason="the estimators need scikit-learn")
    name, kwargs, target = ESTIMATORS[case]
    est = getattr(models, name)(**kwargs, epochs=10, dtype="float32", backend=placement.name,
                                device=placement.device)  # fmt: skip
    est = fitted(est, target, "float32")
    est.export(tmp_path / "est.onnx")
    reference = est.predict_proba if hasattr(est, "predict_proba") else est.predict
    assert_runtime_matches(tmp_path / "est.onnx", reference, "float32")


# ---------------------------------------------------------------- the file


@pytest.fixture(scope="module")
def model():
    return trained([xn.layers.Dense(8, activation="relu", input_dim=N_FEATURES),
                    xn.layers.Dropout(0.3), xn.layers.Dense(3, activation="softmax")])  # fmt: skip


def test_the_graph_has_x_with_a_symbolic_batch_y_and_named_weights(model, tmp_path):
    proto = onnx.load(exported(model, tmp_path))
    onnx.checker.check_model(proto, full_check=True)
    (x,) = proto.graph.input
    (y,) = proto.graph.output
    assert x.name == "x" and y.name == "y"
    dims = x.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == N_FEATURES
    assert x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    names = [init.name for init in proto.graph.initializer]
    assert names == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    kernel = onnx.numpy_helper.to_array(proto.graph.initializer[0])
    np.testing.assert_array_equal(kernel, model.get_weights()[0])
    assert proto.producer_name == "xpnet"


def test_buffers_are_initializers_too(tmp_path):
    if not hasattr(xn.layers, "BatchNormalization"):
        pytest.skip("no BatchNormalization layer yet")
    model = trained([xn.layers.Dense(4, input_dim=N_FEATURES),
                     xn.layers.BatchNormalization(momentum=0.5)], outputs=4)  # fmt: skip
    proto = onnx.load(exported(model, tmp_path))
    values = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    moving = model.layers[1].buffers["moving_variance"]
    np.testing.assert_array_equal(values["batch_normalization/moving_variance"], moving)
    assert [i.name for i in proto.graph.input] == ["x"]


def test_saved_reloaded_exported_twice_gives_identical_bytes(model, tmp_path):
    model.save(tmp_path / "m.xpnet")
    first = exported(xn.load_model(tmp_path / "m.xpnet"), tmp_path, "a.onnx")
    second = exported(xn.load_model(tmp_path / "m.xpnet"), tmp_path, "b.onnx")
    original = exported(model, tmp_path, "c.onnx")
    assert first.read_bytes() == second.read_bytes() == original.read_bytes()


def test_the_model_is_left_untouched(model, tmp_path):
    params = [dict(layer.params) for layer in model.layers]
    x = features(10)
    before = xn.to_numpy(model.predict(x))
    exported(model, tmp_path)
    assert all(
        layer.params[k] is v for layer, p in zip(model.layers, params, strict=True)
        for k, v in p.items()
    )  # fmt: skip
    np.testing.assert_array_equal(xn.to_numpy(model.predict(x)), before)


def test_an_existing_file_is_replaced_atomically(model, tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        model.export(path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.onnx"]  # no temporary left behind
    monkeypatch.undo()
    model.export(path)
    onnx.checker.check_model(onnx.load(path))


# ---------------------------------------------------------------- refusals


def test_an_unbuilt_model_is_refused(tmp_path):
    model = xn.Sequential([xn.layers.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        model.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_unknown_format_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        model.export(tmp_path / "m.tflite", format="tflite")


def test_bfloat16_is_refused(tmp_path):
    pytest.importorskip("torch")
    model = xn.Sequential([xn.layers.Dense(3, input_dim=4)], dtype="bfloat16", backend="torch")
    model.build()
    with pytest.raises(ValueError, match="bfloat16"):
        model.export(tmp_path / "m.onnx")


class HostRead(xn.layers.Layer):
    """Scales by a number read back to the host: not recordable."""

    def forward(self, x, *, training=False, logits=False):
        scale = float(xn.to_numpy(x).max())
        return x / scale, None


class NumpyOut(xn.layers.Layer):
    """Computes on the host and returns a NumPy array."""

    def forward(self, x, *, training=False, logits=False):
        return np.ones((3, 3)), None


@pytest.mark.parametrize("layer", [HostRead, NumpyOut])
def test_a_layer_that_cannot_be_recorded_is_named(layer, tmp_path):
    model = xn.Sequential([xn.layers.Dense(3, input_dim=N_FEATURES), layer(name="odd")])
    model.build()
    with pytest.raises(ValueError, match=rf"layer 'odd' \({layer.__name__}\)"):
        model.export(tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_not_a_model_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="got int"):
        _export.export(42, tmp_path / "m.onnx")


def test_an_unfitted_estimator_is_refused(tmp_path):
    models = pytest.importorskip("xpnet.models", reason="the estimators need scikit-learn")
    with pytest.raises(ValueError, match="not fitted"):
        models.MLPClassifier().export(tmp_path / "m.onnx")


@pytest.mark.parametrize("library", ["ndonnx", "onnx"])
def test_missing_libraries_name_the_extra(library, model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, library, None)  # "import ndonnx" now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "xpnet\[onnx\]"'):
        model.export(tmp_path / "m.onnx")
