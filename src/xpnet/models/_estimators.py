"""The classic models as scikit-learn estimators over :class:`xpnet.Sequential`."""

from __future__ import annotations

from typing import Any

from xpnet.models._base import _ClassifierBase, _RegressorBase

_COMMON = """
    learning_rate : float
        Step size of the optimizer.
    epochs : int
        Passes over the training data.
    batch_size : int, "auto" or None
        Samples per gradient step. None is full-batch gradient descent;
        "auto" is ``min(200, n_samples)``.
    optimizer : str or Optimizer
        ``"sgd"``, ``"adam"``, ``"rmsprop"``, ``"adagrad"``, or an instance
        (its learning rate is replaced by `learning_rate`).
    kernel_initializer : str or Initializer
    dtype : {"float32", "float64"} or None
        Parameter and computation dtype. None (the default) follows the
        input, as scikit-learn does: float32 input trains in float32,
        anything else (float64, integers, lists) in float64.
    backend, device : optional
        Where to train; None trains where the data lives (NumPy for host data).
    seed : int
        Seeds the initial weights and the shuffling.
    verbose : int
        1 shows a progress bar per epoch.

    Attributes
    ----------
    coef_, intercept_ : arrays
        The output layer's weights, shape (n_outputs, n_features) and
        (n_outputs,), in the training backend's namespace.
    loss_curve_ : list of float
        The training loss of each epoch (with full batches: the loss before
        each update).
    n_iter_ : int
        Epochs run.
    model_ : xpnet.Sequential
        The trained network.
    n_features_in_ : int
"""


class _LinearParams:
    """Constructor shared by the linear models (scikit-learn reads its signature)."""

    def __init__(
        self,
        learning_rate: float = 0.01,
        epochs: int = 100,
        batch_size: int | str | None = None,
        optimizer: Any = "sgd",
        kernel_initializer: Any = "zeros",
        dtype: str | None = None,
        backend: str | None = None,
        device: Any = None,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.kernel_initializer = kernel_initializer
        self.dtype = dtype
        self.backend = backend
        self.device = device
        self.seed = seed
        self.verbose = verbose


class LogisticRegression(_LinearParams, _ClassifierBase):
    __doc__ = (
        """Logistic regression trained by gradient descent.

    Two classes: one sigmoid unit and binary cross-entropy; more: a softmax
    layer and categorical cross-entropy (multinomial, as scikit-learn's
    default). With ``kernel_initializer="zeros"``, full batches and float64
    this is, step for step, the textbook loop
    ``e = sigmoid(X @ w + b) - y; w -= lr * X.T @ e / N; b -= lr * mean(e)``.

    Parameters
    ----------"""
        + _COMMON
        + """
    classes_ : array of shape (n_classes,)

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.models import LogisticRegression
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> clf = LogisticRegression(learning_rate=0.5, epochs=50).fit(X, ["no", "no", "yes", "yes"])
    >>> clf.predict(np.array([[-3.0], [3.0]])).tolist()
    ['no', 'yes']
    """
    )


class SoftmaxRegression(LogisticRegression):
    __doc__ = (
        """Multinomial logistic regression: one softmax layer, categorical
    cross-entropy, for any number of classes (two included).

    Parameters
    ----------"""
        + _COMMON
    )

    _binary_sigmoid = False


class LinearRegression(_LinearParams, _RegressorBase):
    __doc__ = (
        """Least-squares linear regression trained by gradient descent on the
    mean squared error (one or several targets).

    Parameters
    ----------"""
        + _COMMON
    )


class _MLPParams(_LinearParams):
    """Constructor shared by the two MLPs: the linear models' parameters with
    other defaults, plus the hidden layers (scikit-learn reads the signature)."""

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        learning_rate: float = 0.01,
        epochs: int = 200,
        batch_size: int | str | None = "auto",
        optimizer: Any = "sgd",
        kernel_initializer: Any = "glorot_uniform",
        dtype: str | None = None,
        backend: str | None = None,
        device: Any = None,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        _LinearParams.__init__(
            self, learning_rate, epochs, batch_size, optimizer, kernel_initializer,
            dtype, backend, device, seed, verbose,
        )  # fmt: skip

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int):
            sizes = (sizes,)
        sizes = tuple(sizes)
        if any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {sizes!r}")
        return sizes


class MLPClassifier(_MLPParams, _ClassifierBase):
    __doc__ = (
        """A multi-layer perceptron classifier.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden layer.
    activation : str
        Activation of the hidden layers (any name of ``xpnet.activations``)."""
        + _COMMON
        + """
    classes_ : array of shape (n_classes,)
    """
    )


class MLPRegressor(_MLPParams, _RegressorBase):
    __doc__ = (
        """A multi-layer perceptron regressor (linear output, mean squared error).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
    activation : str"""
        + _COMMON
    )
