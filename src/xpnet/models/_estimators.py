"""The classic models as scikit-learn estimators over :class:`xpnet.Sequential`."""

from __future__ import annotations

from typing import Any

from xpnet import losses as _losses
from xpnet.models._heads import _ClassifierBase, _RegressorBase

_COMMON = """
    learning_rate : float
        Step size of the optimizer.
    epochs : int
        Passes over the training data.
    batch_size : int, "auto" or None
        Samples per gradient step. None is full-batch gradient descent;
        "auto" is ``min(200, n_samples)``.
    optimizer : str or Optimizer
        ``"sgd"``, ``"adam"`` (scikit-learn's Adam: epsilon 1e-8),
        ``"rmsprop"``, ``"adagrad"``, or an instance (its learning rate is
        replaced by `learning_rate`).
    alpha : float
        L2 penalty, as scikit-learn's MLP applies it: each batch of ``n``
        samples adds ``0.5 * alpha * sum(||W||^2) / n`` over the weight
        matrices (not the intercepts) to the loss.
    kernel_initializer : str or Initializer
        An xpnet initializer for the weights (intercepts start at zero), or
        ``"sklearn"``: weights and intercepts uniform in
        ``±sqrt(6 / (fan_in + fan_out))`` (``±sqrt(2 / ...)`` for a sigmoid
        hidden activation), scikit-learn's MLP initialization.
    dtype : {"float32", "float64"} or None
        Parameter and computation dtype. None (the default) follows the
        input, as scikit-learn does: float32 input trains in float32,
        anything else (float64, integers, lists) in float64.
    backend, device : optional
        Where to train; None trains where the data lives (NumPy for host data).
    seed : int
        Seeds the initial weights, the shuffling and the early-stopping split.
    verbose : int
        1 prints the loss (and validation score) after each epoch.
"""

_FITTED = """
    Attributes
    ----------
    coef_, intercept_ : arrays
        The output layer's weights, shape (n_outputs, n_features) and
        (n_outputs,), in the training backend's namespace.
    loss_curve_ : list of float
        The training loss of each epoch, penalty included (with full
        batches: the loss before each update); each ``partial_fit`` call
        appends its epoch.
    n_iter_ : int
        Epochs run by the last call (1 after ``partial_fit``, as in
        scikit-learn).
    t_ : int
        Training samples seen, over every call since the last ``fit``
        (rows times epochs).
    model_ : xpnet.Sequential
        The trained network.
    n_features_in_ : int
"""

_STOPPING = """
    tol : float
        Training stops once ``n_iter_no_change`` epochs in a row have not
        improved the best training loss (or, with `early_stopping`, the best
        validation score) by more than `tol`.
    n_iter_no_change : int or inf
        Epochs without such an improvement before stopping (scikit-learn's
        rule: it stops when the count exceeds this number).
    early_stopping : bool
        Hold out `validation_fraction` of the training data (stratified for
        classifiers) and watch its score (accuracy, R²) instead of the
        training loss; the weights of the best score are restored at the end.
    validation_fraction : float
        The held-out fraction for `early_stopping`.
    shuffle : bool
        Reshuffle the samples every epoch.
"""

_MLP_FITTED = """
    coefs_, intercepts_ : lists of arrays
        Every layer's weights (shape (fan_in, fan_out)) and intercepts.
    loss_ : float
        The last epoch's training loss.
    best_loss_ : float or None
        The lowest training loss; None with `early_stopping`.
    validation_scores_ : list of float or None
        The validation score after each epoch, with `early_stopping`.
    best_validation_score_ : float or None
        The best of them, with `early_stopping`.
"""


class _LinearParams:
    """Constructor shared by the linear models (scikit-learn reads its signature)."""

    def __init__(
        self,
        learning_rate: float = 0.01,
        epochs: int = 100,
        batch_size: int | str | None = None,
        optimizer: Any = "sgd",
        alpha: float = 0.0,
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
        self.alpha = alpha
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
    default). With ``kernel_initializer="zeros"``, full batches, float64 and
    ``alpha=0`` this is, step for step, the textbook loop
    ``e = sigmoid(X @ w + b) - y; w -= lr * X.T @ e / N; b -= lr * mean(e)``.
    It runs every epoch (there is no tolerance).

    Parameters
    ----------"""
        + _COMMON
        + _FITTED
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
        + _FITTED
    )

    _binary_sigmoid = False


class LinearRegression(_LinearParams, _RegressorBase):
    __doc__ = (
        """Least-squares linear regression trained by gradient descent on the
    mean squared error (one or several targets).

    Parameters
    ----------"""
        + _COMMON
        + _FITTED
    )


class _MLPParams:
    """Constructor shared by the two MLPs, with scikit-learn's MLP defaults
    (scikit-learn reads the signature)."""

    _stops = True

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        learning_rate: float = 0.001,
        epochs: int = 200,
        batch_size: int | str | None = "auto",
        optimizer: Any = "adam",
        alpha: float = 0.0001,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        shuffle: bool = True,
        kernel_initializer: Any = "sklearn",
        dtype: str | None = None,
        backend: str | None = None,
        device: Any = None,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.alpha = alpha
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.kernel_initializer = kernel_initializer
        self.dtype = dtype
        self.backend = backend
        self.device = device
        self.seed = seed
        self.verbose = verbose

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int):
            sizes = (sizes,)
        sizes = tuple(sizes)
        if any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {sizes!r}")
        return sizes


_MLP_INTRO = """
    The defaults are scikit-learn's ``MLPClassifier`` / ``MLPRegressor``
    defaults (``solver="adam"``, ``learning_rate_init=0.001``,
    ``max_iter=200``, its initialization, L2 penalty and stopping rule);
    ``learning_rate`` and ``epochs`` are the names of scikit-learn's
    ``learning_rate_init`` and ``max_iter``. A ``ConvergenceWarning`` says
    when the epochs ran out before the stopping rule ended the fit.
"""


class MLPClassifier(_MLPParams, _ClassifierBase):
    __doc__ = (
        """A multi-layer perceptron classifier.

    Two classes: one sigmoid output unit; more: a softmax layer; a
    multilabel indicator matrix ``y`` of shape (n_samples, n_labels): one
    sigmoid unit per label, whose binary cross-entropies are summed, and
    ``predict`` returns the indicator matrix (labels with probability > 0.5).
"""
        + _MLP_INTRO
        + """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden layer.
    activation : str
        Activation of the hidden layers: any name of ``xpnet.activations``,
        or scikit-learn's ``"logistic"`` / ``"identity"``."""
        + _COMMON
        + _STOPPING
        + _FITTED
        + _MLP_FITTED
        + """
    classes_ : array of shape (n_classes,)

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from xpnet.models import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate=0.01, epochs=300).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """
    )

    _multilabel = True


class MLPRegressor(_MLPParams, _RegressorBase):
    __doc__ = (
        """A multi-layer perceptron regressor (linear output).

    As scikit-learn's, it minimizes half the squared error,
    ``0.5 * sum((y - output)**2)`` per sample (summed over targets), plus
    the L2 penalty.
"""
        + _MLP_INTRO
        + """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int
    activation : str"""
        + _COMMON
        + _STOPPING
        + _FITTED
        + _MLP_FITTED
    )

    _loss = _losses.SumSquaredError
