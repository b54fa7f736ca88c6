"""Weight initialisers, each by name.

Every initialiser returns a float64 matrix of shape (fan_out, fan_in), PyTorch orientation, drawn
from an explicit ``numpy.random.Generator``. ``gain`` multiplies the matrix (the standard deviation
for Gaussian ones, the half-width for uniform ones, the radius for ``spectral``).
"""

import numpy as np

from rnnsim.validation import choice, finite_float, positive_int


def gaussian(fan_out, fan_in, gain, rng):
    """Entries N(0, gain^2 / fan_in): the mean-field convention, sigma_w = gain (Poole et al. 2016)."""
    return rng.normal(0.0, gain / np.sqrt(fan_in), size=(fan_out, fan_in))


def orthogonal(fan_out, fan_in, gain, rng):
    """gain times a Haar-random (semi-)orthogonal matrix (Saxe et al. 2014): QR of a Gaussian matrix
    with the signs of R's diagonal folded into Q."""
    big, small = max(fan_out, fan_in), min(fan_out, fan_in)
    q, r = np.linalg.qr(rng.normal(size=(big, small)))
    q *= np.sign(np.diag(r))
    return gain * (q if fan_out >= fan_in else q.T)


def identity(fan_out, fan_in, gain, rng):
    """gain times the identity (the IRNN of Le et al. 2015); rectangular shapes get ``eye``."""
    return gain * np.eye(fan_out, fan_in)


def glorot_uniform(fan_out, fan_in, gain, rng):
    """U[-a, a], a = gain sqrt(6 / (fan_in + fan_out)): Glorot & Bengio 2010, eq. 16 ("normalised")."""
    a = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_out, fan_in))


def glorot_normal(fan_out, fan_in, gain, rng):
    """N(0, gain^2 * 2 / (fan_in + fan_out)): the Gaussian with Glorot & Bengio's variance."""
    return rng.normal(0.0, gain * np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_out, fan_in))


def he(fan_out, fan_in, gain, rng):
    """N(0, gain^2 * 2 / fan_in): He et al. 2015, for ReLU (chi_1 = 1 at gain 1)."""
    return rng.normal(0.0, gain * np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


def lecun(fan_out, fan_in, gain, rng):
    """N(0, gain^2 / fan_in): LeCun et al. 1998 (the same law as ``gaussian``)."""
    return gaussian(fan_out, fan_in, gain, rng)


def uniform(fan_out, fan_in, gain, rng):
    """U[-gain/sqrt(fan_in), gain/sqrt(fan_in)]: Glorot & Bengio 2010, eq. 1, the "standard"
    initialisation (n Var[W] = 1/3 at gain 1)."""
    a = gain / np.sqrt(fan_in)
    return rng.uniform(-a, a, size=(fan_out, fan_in))


def spectral(fan_out, fan_in, gain, rng):
    """A Gaussian matrix rescaled to spectral radius (largest |eigenvalue|) = gain; square only."""
    if fan_out != fan_in:
        raise ValueError(f"init 'spectral' needs a square matrix; got shape ({fan_out}, {fan_in})")
    m = rng.normal(size=(fan_out, fan_in))
    return m * (gain / np.max(np.abs(np.linalg.eigvals(m))))


INITIALISERS = {
    f.__name__: f
    for f in (gaussian, orthogonal, identity, glorot_uniform, glorot_normal, he, lecun, uniform)
}
INITIALISERS["spectral"] = spectral


def matrix(name, fan_out, fan_in, *, gain=1.0, rng):
    """Draw a (fan_out, fan_in) float64 matrix with the initialiser ``name``.

    Parameters
    ----------
    name : str, one of `INITIALISERS`.
    fan_out, fan_in : int
    gain : float >= 0, scale (see the module docstring).
    rng : numpy.random.Generator

    Returns
    -------
    float64 array (fan_out, fan_in)
    """
    choice("init", name, INITIALISERS)
    fan_out = positive_int("fan_out", fan_out)
    fan_in = positive_int("fan_in", fan_in)
    gain = finite_float("gain", gain, minimum=0.0)
    return np.ascontiguousarray(INITIALISERS[name](fan_out, fan_in, gain, rng))
