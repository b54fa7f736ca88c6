"""rnnsim: a laboratory for the gradient dynamics of deep and recurrent networks."""

__version__ = "0.1.0"

from rnnsim import init, tasks, theory  # noqa: E402
from rnnsim.jacobians import (  # noqa: E402
    gradient_contributions,
    jacobian_norms,
    jacobian_spectrum,
    lyapunov_spectrum,
)
from rnnsim.models import MLP, RNN, warmup  # noqa: E402
from rnnsim.train import train  # noqa: E402

__all__ = [
    "MLP",
    "RNN",
    "__version__",
    "gradient_contributions",
    "init",
    "jacobian_norms",
    "jacobian_spectrum",
    "lyapunov_spectrum",
    "tasks",
    "theory",
    "train",
    "warmup",
]
