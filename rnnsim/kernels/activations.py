"""Activation functions selected by an integer code, for use inside Numba kernels.

Kernels never receive jitted functions as arguments (that defeats Numba's on-disk cache and
multiplies compile time); they receive an integer code and branch on it. `ACTIVATIONS` maps the
public names to the codes; `GAMMA` gives sup |phi'| for each (the gamma of Pascanu et al. 2013).

``tanh`` and ``sigmoid`` are computed from `exp_neg`, an exp written in plain arithmetic so that
LLVM vectorises loops over it (the C library's ``tanh`` and ``exp`` are scalar calls and cost more
than the matrix products of a small RNN step). They agree with NumPy's to about 2 ulp.
"""

import numpy as np
from numba import njit

from rnnsim.kernels.jit import JIT, JIT_INLINE

LINEAR, TANH, RELU, SIGMOID = 0, 1, 2, 3
ACTIVATIONS = {"linear": LINEAR, "tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}
GAMMA = {"linear": 1.0, "tanh": 1.0, "relu": 1.0, "sigmoid": 0.25}

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite) for exact range reduction
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00


@njit(**JIT_INLINE)
def exp_neg(y):
    """exp(y) for y <= 0 (y is clamped at -746, where exp(y) rounds to 0).

    y = k ln2 + r with |r| <= ln2/2; exp(r) by its Taylor polynomial to degree 13 (truncation
    < 1e-17); 2^k by multiplying the powers of two of k's binary digits (exact), all without
    branches or integer bit casts so that loops over it vectorise.
    """
    y = max(y, -746.0)
    k = np.floor(y * _INV_LN2 + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    m = np.int64(-k)
    p *= 0.5 if m & 1 else 1.0
    p *= 0.25 if m & 2 else 1.0
    p *= 0.0625 if m & 4 else 1.0
    p *= 0.00390625 if m & 8 else 1.0
    p *= 1.52587890625e-05 if m & 16 else 1.0
    p *= 2.3283064365386963e-10 if m & 32 else 1.0
    p *= 5.421010862427522e-20 if m & 64 else 1.0
    p *= 2.938735877055719e-39 if m & 128 else 1.0
    p *= 8.636168555094445e-78 if m & 256 else 1.0
    p *= 7.458340731200207e-155 if m & 512 else 1.0
    p *= 5.562684646268003e-309 if m & 1024 else 1.0  # 2^-1024, subnormal
    return p


@njit(**JIT_INLINE)
def tanh(x):
    """tanh(x): the Cephes rational approximation for |x| < 0.625, else (1 - e)/(1 + e) with
    e = exp(-2|x|). NaN stays NaN."""
    ax = abs(x)
    z = x * x
    num = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
    num -= 1.61468768441708447952e3
    den = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
    den += 4.84406305325125486048e3
    small = x + x * z * num / den
    e = exp_neg(-2.0 * min(ax, 40.0))
    large = (1.0 - e) / (1.0 + e)
    large = large if x >= 0.0 else -large
    result = small if ax < 0.625 else large
    return result if x == x else x


@njit(**JIT_INLINE)
def sigmoid(x):
    """1 / (1 + exp(-x)), through exp(-|x|) so that nothing overflows. NaN stays NaN."""
    e = exp_neg(-abs(x))
    result = 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)
    return result if x == x else x


@njit(**JIT_INLINE)
def phi(code, a):
    """phi(a) for one float64 pre-activation ``a``."""
    if code == TANH:
        return tanh(a)
    if code == RELU:
        return 0.0 if a <= 0.0 else a  # a NaN stays NaN
    if code == SIGMOID:
        return sigmoid(a)
    return a


@njit(**JIT_INLINE)
def dphi_from_h(code, h):
    """phi'(a) written in terms of the post-activation ``h = phi(a)``.

    Every supported activation's derivative is a function of its output (tanh: 1 - h^2,
    sigmoid: h (1 - h), relu: 1 if h > 0, linear: 1), so kernels store states only.
    relu'(0) is taken as 0. NaN propagates (never silently becomes 0).
    """
    if code == TANH:
        return 1.0 - h * h
    if code == RELU:
        if h > 0.0:
            return 1.0
        return 0.0 if h <= 0.0 else h  # a NaN stays NaN
    if code == SIGMOID:
        return h * (1.0 - h)
    return 1.0


@njit(**JIT_INLINE)
def d2phi_from_h(code, h):
    """phi''(a) in terms of ``h = phi(a)`` (tanh: -2h(1-h^2), sigmoid: h(1-h)(1-2h), else 0)."""
    if code == TANH:
        return -2.0 * h * (1.0 - h * h)
    if code == SIGMOID:
        return h * (1.0 - h) * (1.0 - 2.0 * h)
    return 0.0


@njit(**JIT)
def activate(code, pre, out):
    """``out[i] = phi(pre[i])`` over 1-D C-contiguous arrays; the branch on ``code`` sits outside
    the loops so that each loop vectorises. ``pre`` and ``out`` may be the same array."""
    n = pre.size
    if code == TANH:
        for i in range(n):
            out[i] = tanh(pre[i])
    elif code == SIGMOID:
        for i in range(n):
            out[i] = sigmoid(pre[i])
    elif code == RELU:
        for i in range(n):
            a = pre[i]
            out[i] = 0.0 if a <= 0.0 else a
    else:
        for i in range(n):
            out[i] = pre[i]


@njit(**JIT)
def times_dphi(code, g, h, out):
    """``out[i] = g[i] * phi'(a_i)`` with phi' from the states ``h``; 1-D C-contiguous arrays,
    loops vectorise."""
    n = g.size
    if code == TANH:
        for i in range(n):
            out[i] = g[i] * (1.0 - h[i] * h[i])
    elif code == SIGMOID:
        for i in range(n):
            out[i] = g[i] * (h[i] * (1.0 - h[i]))
    elif code == RELU:
        for i in range(n):
            out[i] = g[i] * dphi_from_h(RELU, h[i])
    else:
        for i in range(n):
            out[i] = g[i]
