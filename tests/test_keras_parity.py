"""What a Keras user types in the first hour: ``verbose`` levels, ``evaluate``
and ``predict`` keywords, and ``xn.models`` after ``import xpnet``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close
from xpnet import _progress, layers

rng = np.random.default_rng(5)
X = rng.normal(size=(50, 3))
Y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)


def model_on(placement=None, **compile_kw):
    where = {} if placement is None else {"backend": placement.name, "device": placement.device}
    model = xn.Sequential(
        [layers.Dense(5, activation="relu"), layers.Dense(2, activation="softmax")],
        dtype="float64",
        seed=1,
        **where,
    )
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"], **compile_kw
    )
    return model


# ------------------------------------------------------------ verbose


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model_on().fit(X, Y, epochs=3, batch_size=10, validation_split=0.2, verbose=2)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and err == ""
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"Epoch {epoch}/3 - 4 batches - ")
        assert " - loss: " in line and " - accuracy: " in line and " - val_loss: " in line
    assert "\r" not in out


def test_verbose_1_prints_lines_when_the_output_is_not_a_terminal(capsys):
    # pytest's captured streams are not terminals, as a log file or CI is not
    model_on().fit(X, Y, epochs=300, batch_size=50, verbose=1)
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 300 and err == ""
    assert "\r" not in out


def test_verbose_1_draws_a_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "interactive", lambda stream: True)
    model_on().fit(X, Y, epochs=2, batch_size=10, verbose=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "loss=" in err and "accuracy=" in err


def test_verbose_auto_is_1_and_0_is_silent(capsys):
    model_on().fit(X, Y, epochs=2, verbose="auto")
    assert len(capsys.readouterr().out.splitlines()) == 2
    model_on().fit(X, Y, epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_interactive_is_false_for_files_and_closed_streams(tmp_path):
    with open(tmp_path / "log.txt", "w") as log:
        assert not _progress.interactive(log)
    assert not _progress.interactive(log)  # closed
    assert not _progress.interactive(object())


@pytest.mark.parametrize("verbose", [3, -1, "loud", 1.5, None, True])
def test_bad_verbose_is_refused_before_anything_changes(verbose):
    model = model_on()
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2 or 'auto'"):
        model.fit(X, Y, epochs=1, verbose=verbose)
    assert not model.built or model.placement is None
    model.fit(X, Y, epochs=1, verbose=0)
    before = model.get_weights()
    for call in (
        lambda: model.fit(X, Y, epochs=1, verbose=verbose),
        lambda: model.evaluate(X, Y, verbose=verbose),
        lambda: model.predict(X, verbose=verbose),
    ):
        with pytest.raises(ValueError, match="verbose must be"):
            call()
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ evaluate and predict


def test_evaluate_and_predict_batch_size_changes_memory_not_results(placement):
    model = model_on(placement)
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    whole = model.evaluate(X, Y)
    outputs = model.predict(X)
    for batch_size in (1, 7, 50, 1000):
        chunked = model.evaluate(X, Y, batch_size=batch_size)
        assert chunked.keys() == whole.keys()
        for key, value in whole.items():
            assert chunked[key] == pytest.approx(value, rel=1e-12), (key, batch_size)
        assert_close(model.predict(X, batch_size=batch_size), outputs, rtol=1e-12)


def test_evaluate_takes_sample_weight_by_keyword():
    model = model_on()
    model.fit(X, Y, epochs=1, verbose=0)
    w = np.where(Y == 1, 2.0, 0.0)
    weighted = model.evaluate(X, Y, sample_weight=w, batch_size=9)["loss"]
    ones = model.evaluate(X[Y == 1], Y[Y == 1])["loss"]
    assert weighted == pytest.approx(ones, rel=1e-12)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "32", True])
def test_bad_batch_size_is_refused(batch_size):
    model = model_on()
    model.fit(X, Y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1 or None"):
        model.evaluate(X, Y, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1 or None"):
        model.predict(X, batch_size=batch_size)


def test_evaluate_and_predict_verbose_print_a_line(capsys):
    model = model_on()
    model.fit(X, Y, epochs=1, verbose=0)
    capsys.readouterr()
    result = model.evaluate(X, Y, batch_size=20, verbose=2)
    model.predict(X, batch_size=20, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Evaluate - 3 batches - ")
    assert f"loss: {result['loss']:.4f}" in lines[0]
    assert lines[1].startswith("Predict - 3 batches - ")
    assert len(lines) == 2


def test_format_logs_keeps_small_values_readable():
    assert _progress.format_logs({"loss": 0.5, "mae": 2.5e-5, "z": 0.0}) == (
        "loss: 0.5000 - mae: 2.5000e-05 - z: 0.0000"
    )
    assert _progress.format_logs({"loss": float("nan")}) == "loss: nan"


# ------------------------------------------------------------ xn.models


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_models_are_reachable_from_import_xpnet_and_loaded_lazily():
    done = run_python(
        "import sys, xpnet as xn\n"
        "assert 'sklearn' not in sys.modules and 'xpnet.models' not in sys.modules\n"
        "assert 'models' in dir(xn)\n"
        "est = xn.models.MLPClassifier\n"
        "assert 'sklearn' in sys.modules\n"
        "from xpnet.models import MLPClassifier\n"
        "assert MLPClassifier is est\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_without_scikit_learn_xpnet_imports_and_models_names_the_extra():
    done = run_python(
        "import sys\n"
        "sys.modules['sklearn'] = None  # as if it were not installed\n"
        "import xpnet as xn\n"
        "xn.Sequential([xn.layers.Dense(1)])\n"
        "try:\n"
        "    xn.models\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install "xpnet[sklearn]"' in done.stdout


def test_unknown_attributes_are_still_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        xn.nosuch  # noqa: B018


# ------------------------------------------------------------ first data


@pytest.mark.parametrize("call", ["evaluate", "predict", "train_on_batch", "prepare"])
def test_a_refused_first_call_leaves_a_host_built_model_unplaced(placement, call):
    model = xn.Sequential(
        [layers.Dense(4, activation="relu", input_dim=3), layers.Dense(2, activation="softmax")],
        dtype="float64",
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    assert model.built and model.placement is None
    before = model.get_weights()
    bad = X.copy()
    bad[3, 1] = np.nan
    bad_x = _backend_asarray(bad, placement)
    args = (bad_x,) if call == "predict" else (bad_x, Y)
    with pytest.raises(ValueError, match="NaN"):
        getattr(model, call)(*args)
    assert model.placement is None
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # and the next, good call places it on the data's library as usual
    model.predict(_backend_asarray(X, placement))
    assert model.backend == placement.name


def _backend_asarray(data, placement):
    from xpnet import _backend

    return _backend.asarray(data, placement, "float64")
