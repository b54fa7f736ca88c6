"""rnnsim: a laboratory for the gradient dynamics of deep and recurrent networks."""

__version__ = "0.1.0"

from rnnsim import init, runtime, tasks, theory  # noqa: E402
from rnnsim.ensemble import Ensemble  # noqa: E402
from rnnsim.jacobians import (  # noqa: E402
    gradient_contributions,
    jacobian_norms,
    jacobian_spectrum,
    lyapunov_spectrum,
)
from rnnsim.models import MLP, RNN  # noqa: E402
from rnnsim.train import train  # noqa: E402

_LAZY = {"load": "rnnsim.runs", "plot": "rnnsim.explore", "compare": "rnnsim.explore"}


def __getattr__(name):
    """``load``, ``plot`` and ``compare``, imported on first use (pandas' readers and
    matplotlib stay out of ``import rnnsim``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rnnsim' has no attribute {name!r}")


def warmup():
    """Compile (or load from Numba's on-disk cache) every kernel once, on tiny inputs.

    Experiments and the test session call it first, so that compile time is paid, and reported,
    apart from run time. It configures the process for the kernels first
    (`rnnsim.runtime.configure`). Returns the seconds it took.
    """
    from rnnsim import ensemble, jacobians, models
    from rnnsim.train import warmup as training

    runtime.configure()
    return models.warmup() + jacobians.warmup() + ensemble.warmup() + training()


__all__ = [
    "Ensemble",
    "MLP",
    "RNN",
    "__version__",
    "gradient_contributions",
    "init",
    "jacobian_norms",
    "jacobian_spectrum",
    "compare",
    "load",
    "lyapunov_spectrum",
    "plot",
    "runtime",
    "tasks",
    "theory",
    "train",
    "warmup",
]
