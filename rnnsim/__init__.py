"""rnnsim: a laboratory for the gradient dynamics of deep and recurrent networks."""

__version__ = "0.1.0"

from rnnsim.models import MLP, RNN  # noqa: E402

__all__ = ["MLP", "RNN", "__version__"]
