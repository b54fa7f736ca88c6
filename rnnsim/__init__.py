"""rnnsim: a laboratory for the gradient dynamics of deep and recurrent networks."""

__version__ = "0.1.0"
