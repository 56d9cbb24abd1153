"""Callbacks: early stopping, checkpoints, NaN termination, LR scheduling, CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import xpnet as xn
from xpnet import callbacks, layers

rng = np.random.default_rng(2)
X = rng.normal(size=(60, 3))
Y = X @ np.array([1.0, -1.0, 2.0])


def regressor(lr=0.05):
    model = xn.Sequential([layers.Dense(1)], dtype="float64", seed=0)
    model.compile(loss="mse", optimizer=xn.optimizers.SGD(lr))
    return model


class Scripted(callbacks.Callback):
    """Overwrites a log value with a script, to drive the monitors exactly."""

    def __init__(self, key, values):
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_early_stopping_patience_and_restore_best_weights():
    model = regressor()
    seen = []

    class Keep(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(model.get_weights())

    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    script = Scripted("val_loss", [5.0, 3.0, 4.0, 3.5, 1.0, 0.5])
    history = model.fit(X, Y, epochs=6, callbacks=[script, Keep(), stop], verbose=0)
    assert len(history.history["loss"]) == 4  # best at epoch 1, two without improvement, stop
    assert stop.best_epoch == 1 and stop.stopped_epoch == 3
    for a, b in zip(model.get_weights(), seen[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_on_accuracy_maximizes():
    model = regressor()
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=0)
    model.fit(
        X,
        Y,
        epochs=5,
        callbacks=[Scripted("val_accuracy", [0.5, 0.7, 0.6, 0.9, 1.0]), stop],
        verbose=0,
    )
    assert stop.stopped_epoch == 2


def test_early_stopping_warns_when_the_monitor_is_missing():
    with pytest.warns(RuntimeWarning, match="'val_loss' is not in the epoch logs"):
        regressor().fit(X, Y, epochs=1, callbacks=[callbacks.EarlyStopping()], verbose=0)


def test_model_checkpoint_saves_every_epoch_or_only_the_best(tmp_path):
    model = regressor()
    every = callbacks.ModelCheckpoint(tmp_path / "m-{epoch}.xpnet", save_best_only=False)
    model.fit(X, Y, epochs=2, callbacks=[every], verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.xpnet", "m-2.xpnet"]

    best = tmp_path / "best.xpnet"
    script = Scripted("val_loss", [3.0, 1.0, 2.0])
    snapshots = []

    class Keep(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.get_weights())

    model.fit(
        X, Y, epochs=3, verbose=0,
        callbacks=[script, Keep(), callbacks.ModelCheckpoint(best, save_best_only=True)],
    )  # fmt: skip
    loaded = xn.load_model(best)
    for a, b in zip(loaded.get_weights(), snapshots[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_takes_keras_keywords(tmp_path, capsys):
    model = regressor()
    best = tmp_path / "best-{epoch}.weights.npz"
    check = callbacks.ModelCheckpoint(
        filepath=best, monitor="val_mse", save_best_only=True, save_weights_only=True,
        mode="min", verbose=1,
    )  # fmt: skip
    script = Scripted("val_mse", [3.0, 1.0, 2.0])
    snapshots = []

    class Keep(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.get_weights())

    model.fit(X, Y, epochs=3, callbacks=[script, Keep(), check], verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-1.weights.npz",
        "best-2.weights.npz",
    ]
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"Epoch 1: val_mse improved to 3, saving to {tmp_path / 'best-1.weights.npz'}",
        f"Epoch 2: val_mse improved from 3 to 1, saving to {tmp_path / 'best-2.weights.npz'}",
        "Epoch 3: val_mse did not improve from 1",
    ]
    fresh = regressor().build(3)
    fresh.load_weights(tmp_path / "best-2.weights.npz")
    for a, b in zip(fresh.get_weights(), snapshots[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("monitor", "mode"),
    [("val_auc", "max"), ("precision", "max"), ("val_recall", "max"), ("f1_score", "max"),
     ("val_accuracy", "max"), ("val_loss", "min"), ("mae", "min")],
)  # fmt: skip
def test_auto_mode_maximizes_scores_and_minimizes_errors(monitor, mode):
    stop = callbacks.EarlyStopping(monitor=monitor, mode="auto")
    assert stop._better(2.0, 1.0) is (mode == "max")


def test_terminate_on_nan_stops_a_diverging_run():
    model = xn.Sequential([layers.Dense(1)], seed=0)  # float32 overflows within a few epochs
    model.compile(loss="mse", optimizer=xn.optimizers.SGD(50.0))
    # No errstate here: fit itself must not warn (pytest turns warnings into errors).
    history = model.fit(
        X, Y * 1e3, epochs=50, batch_size=60, callbacks=[callbacks.TerminateOnNaN()], verbose=0
    )
    assert len(history.history["loss"]) < 50
    assert not np.isfinite(history.history["loss"][-1])


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    model = regressor(lr=0.1)
    history = model.fit(
        X, Y, epochs=3, verbose=0,
        callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
    )  # fmt: skip
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    model.compile(loss="mse", optimizer=xn.optimizers.SGD(xn.schedules.StepDecay(0.1, 5)))
    with pytest.raises(TypeError, match="already has a schedule"):
        model.fit(
            X, Y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr)]
        )


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    model = regressor()
    model.fit(
        X, Y, epochs=3, validation_split=0.2, callbacks=[callbacks.CSVLogger(path)], verbose=0
    )
    rows = _rows(path)
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert float(rows[3][1]) == pytest.approx(model.history.history["loss"][2])
    model.fit(X, Y, epochs=1, callbacks=[callbacks.CSVLogger(path, append=True)], verbose=0)
    assert len(_rows(path)) == 5


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_bad_callback_arguments():
    with pytest.raises(ValueError, match="patience must be >= 0"):
        callbacks.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="Unknown mode 'mx'. Did you mean 'max'"):
        callbacks.EarlyStopping(mode="mx")
    with pytest.raises(TypeError, match="schedule must be callable"):
        callbacks.LearningRateScheduler(0.1)


def test_model_checkpoint_names_a_path_it_cannot_fill_or_write(tmp_path):
    model = regressor()
    before = model.get_weights() if model.built else None
    typo = callbacks.ModelCheckpoint(tmp_path / "m-{nope}.xpnet")
    with pytest.raises(ValueError, match=r"cannot fill in filepath .*'nope'.*\['loss'\]"):
        model.fit(X, Y, epochs=1, callbacks=[typo], verbose=0)
    assert before is None and not model.built  # the failed fit changed nothing
    nowhere = callbacks.ModelCheckpoint(tmp_path / "no" / "such" / "m.xpnet")
    with pytest.raises(FileNotFoundError, match=r"cannot write .*m\.xpnet: the folder .* does not"):
        model.fit(X, Y, epochs=1, callbacks=[nowhere], verbose=0)
