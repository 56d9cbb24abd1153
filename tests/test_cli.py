"""The xpnet command line: demo, info, bench, and its one-line errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from xpnet import cli

pytest.importorskip("sklearn")


def test_demo_trains_reports_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    assert cli.main(["demo", "--epochs", "15", "--plot", str(png), "--quiet"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.95
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("dataset", ["breast_cancer", "moons", "spirals"])
def test_other_datasets(dataset, capsys):
    assert cli.main(["demo", "--dataset", dataset, "--epochs", "2", "--plot", "", "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_demo_on_every_backend(placement, capsys):
    args = ["demo", "--backend", placement.name, "--epochs", "1", "--plot", "", "--quiet"]
    if placement.name == "array_api_strict" and "device1" in str(placement.device):
        args += ["--device", "device1"]
    assert cli.main(args) == 0
    assert f"backend: {placement.name}" in capsys.readouterr().out


def test_demo_reports_each_epoch(capsys, monkeypatch):
    # captured output is not a terminal: one line per epoch, on stdout
    assert cli.main(["demo", "--epochs", "2", "--plot", ""]) == 0
    assert "Epoch 2/2 - " in capsys.readouterr().out
    # on a terminal: a progress bar, on stderr
    from xpnet import _progress

    monkeypatch.setattr(_progress, "interactive", lambda stream: True)
    assert cli.main(["demo", "--epochs", "2", "--plot", ""]) == 0
    assert "Epoch 2/2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--backend", "nmupy"], "Unknown backend 'nmupy'. Did you mean 'numpy'?"),
        (["demo", "--backend", "numpy", "--device", "cuda:0"], "backend 'numpy' cannot run here"),
        (["demo", "--backend", "array_api_strict", "--device", "gpu9"], "cannot run here"),
    ],
)
def test_errors_are_one_line_and_exit_2(args, message, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_backend_and_missing_gpu(capsys, monkeypatch):
    from xpnet._backend import registry

    def unavailable(name):
        raise ImportError("no module named cupy")

    monkeypatch.setattr(registry, "_load", unavailable)
    monkeypatch.setattr(registry, "_LOADED", {})
    assert cli.main(["demo", "--backend", "cupy"]) == 2
    assert "pip install cupy-cuda12x" in capsys.readouterr().err

    def no_gpu(name):
        raise RuntimeError("cupy is installed but no CUDA device was found")

    monkeypatch.setattr(registry, "_load", no_gpu)
    assert cli.main(["demo", "--backend", "cupy"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_info_lists_backends_and_versions(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("xpnet ")
    assert "numpy" in out and "devices: cpu" in out and "cupy" in out


def test_bench_prints_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    args = [
        "bench",
        "--backends",
        "numpy",
        "--sizes",
        "S",
        "--seconds",
        "0.02",
        "--json",
        str(path),
    ]
    assert cli.main(args) == 0
    assert "/ GEMM floor" in capsys.readouterr().out
    records = json.loads(path.read_text())
    fields = {
        "backend",
        "device",
        "dtype",
        "size",
        "phase",
        "samples_per_s",
        "seconds",
        "floor_ratio",
        "torch_ratio",
        "hand_ratio",
    }
    assert all(set(r) == fields for r in records)
    ours = [r for r in records if r["backend"] == "numpy"]
    assert [r["phase"] for r in ours] == ["forward", "backward", "step", "train_on_batch", "fit"]
    assert all(r["hand_ratio"] > 0 for r in ours if r["phase"] not in ("forward", "backward"))
    assert all(r["samples_per_s"] > 0 and r["floor_ratio"] > 0 for r in ours)
    assert {r["backend"] for r in records} >= {"numpy", "numpy-handwritten", "sklearn"}
    if importlib.util.find_spec("torch") is not None:
        assert all(r["torch_ratio"] > 0 for r in records)


def test_bench_refuses_float64_on_jax_without_x64(monkeypatch, capsys):
    pytest.importorskip("jax")
    from xpnet import _backend

    def no_x64(xp, dtype=None):
        raise TypeError("float64 on the jax backend needs 64-bit mode")

    monkeypatch.setattr(_backend, "float_dtype", no_x64)
    assert cli.main(["bench", "--backends", "jax", "--dtype", "float64"]) == 2
    assert "64-bit mode" in capsys.readouterr().err


def test_python_dash_m_and_bad_arguments():
    done = subprocess.run(
        [sys.executable, "-m", "xpnet", "demo", "--epochs", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "must be >= 1" in done.stderr


# ---------------------------------------------------------------- export


def needs_onnx():
    for name in ("ndonnx", "onnx", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f'{name} is not installed: pip install "xpnet[onnx]" onnxruntime')


@pytest.fixture
def saved_model(tmp_path):
    import numpy as np

    import xpnet as xn

    model = xn.Sequential([xn.layers.Dense(8, activation="relu", input_dim=4),
                           xn.layers.Dense(3, activation="softmax")], seed=0)  # fmt: skip
    model.build()
    path = tmp_path / "model.xpnet"
    model.save(path)
    return path, model, np.random.default_rng(0).normal(size=(5, 4)).astype("float32")


def test_export_writes_an_onnx_file_that_runs(saved_model, tmp_path, capsys):
    needs_onnx()
    import numpy as np
    import onnxruntime

    import xpnet as xn

    path, model, x = saved_model
    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(path), str(out)]) == 0
    assert f"wrote {out}: input 'x' of shape (N, 4), float32" in capsys.readouterr().out
    (y,) = onnxruntime.InferenceSession(str(out)).run(None, {"x": x})
    np.testing.assert_allclose(y, xn.to_numpy(model.predict(x)), rtol=1e-6, atol=1e-6)


def test_export_errors_are_one_line_and_exit_2(saved_model, tmp_path, capsys):
    needs_onnx()
    path, _, _ = saved_model
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    cases = [
        ([str(tmp_path / "missing.xpnet"), "out.onnx"], "No such file or directory"),
        ([str(tmp_path), "out.onnx"], "cannot read"),
        ([str(not_a_model), "out.onnx"], "is not an xpnet model file"),
        ([str(path), str(tmp_path / "no" / "such" / "dir.onnx")], "cannot write"),
    ]
    for args, message in cases:
        assert cli.main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("xpnet: error: ") and message in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.xpnet", "notes.txt"]


def test_export_without_ndonnx_names_the_extra(saved_model, tmp_path, capsys, monkeypatch):
    path, _, _ = saved_model
    monkeypatch.setitem(sys.modules, "ndonnx", None)
    assert cli.main(["export", str(path), str(tmp_path / "m.onnx")]) == 2
    assert 'pip install "xpnet[onnx]"' in capsys.readouterr().err
