"""The textbook models as scikit-learn compatible estimators.

Needs scikit-learn (``pip install "xpnet[sklearn]"``).
"""

try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without scikit-learn
    raise ImportError('xpnet.models needs scikit-learn: pip install "xpnet[sklearn]"') from exc

from xpnet.models._estimators import (
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    SoftmaxRegression,
)

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
    "SoftmaxRegression",
]
