"""Activations: one record each, and the compiled phi that Numba kernels select by its code.

An `Activation` record holds everything rnnsim knows about one activation: its name, the integer
code that kernels branch on, phi, phi' and phi'' of the pre-activation in NumPy (elementwise, any
shape: the reference's and theory's), gamma = sup |phi'| (Pascanu et al. 2013, section 3.2) and,
for the piecewise-linear ones, the Gaussian expectations that mean-field theory needs in closed form
(`ClosedForms`). `record(name)` looks one up; `ACTIVATIONS` maps the public names to the codes.

Kernels never receive jitted functions as arguments (that defeats Numba's on-disk cache and
multiplies compile time); they receive the record's integer code and branch on it, so the
compiled phi below (`phi`, `dphi_from_h`, `d2phi_from_h`, `activate`, `times_dphi`) are keyed
by the codes ``LINEAR``, ``TANH``, ``RELU``, ``SIGMOID`` that the records carry.

``tanh`` and ``sigmoid`` are computed from `exp_neg`, an exp written in plain arithmetic so that
LLVM vectorises loops over it (the C library's ``tanh`` and ``exp`` are scalar calls and cost more
than the matrix products of a small RNN step). Their errors: exp 1 ulp, tanh 1.5, sigmoid 2.3.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import config, njit, types
from numba.extending import intrinsic

from rnnsim.kernels.jit import JIT, JIT_INLINE

#: The kernel codes (globals, so that Numba compiles them in as constants).
LINEAR, TANH, RELU, SIGMOID = 0, 1, 2, 3

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite) for exact range reduction
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_ROUND = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer kept in the low bits
_ROUND_BITS = 0x4338000000000000  # its bit pattern


if config.DISABLE_JIT:  # the kernels' plain-Python run (tests/test_nojit.py)

    def float_bits(x):
        """The IEEE-754 bit pattern of a float64, as an int64."""
        return int(np.float64(x).view(np.int64))

    def bits_float(i):
        """The float64 whose IEEE-754 bit pattern is the low 64 bits of the integer ``i``."""
        return float(np.uint64(i & 0xFFFF_FFFF_FFFF_FFFF).view(np.float64))

else:

    @intrinsic
    def float_bits(typingctx, x):
        """The IEEE-754 bit pattern of a float64, as an int64 (an LLVM bitcast, which vectorises)."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))

        return types.int64(types.float64), codegen

    @intrinsic
    def bits_float(typingctx, i):
        """The float64 whose IEEE-754 bit pattern is the int64 ``i`` (an LLVM bitcast)."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return types.float64(types.int64), codegen


@njit(**JIT_INLINE)
def exp_neg(y):
    """exp(y) for y <= 0 (y is clamped at -746, where exp(y) rounds to 0), within 1 ulp.

    y = k ln2 + r with |r| <= ln2/2; exp(r) by its Taylor polynomial to degree 13 (truncation
    < 1e-17), the terms above the linear one by Estrin's scheme (a short dependency chain) and
    the 1 added last; 2^k built from its bits in two factors, so that results down to the
    subnormals round once. No branches and no
    float-to-integer conversions (which AVX2 lacks for int64), so loops over it vectorise.
    """
    y = max(y, -746.0)
    shifted = y * _INV_LN2 + _ROUND
    k = shifted - _ROUND
    r = (y - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    c23 = 1.0 / 2.0 + r * (1.0 / 6.0)
    c45 = 1.0 / 24.0 + r * (1.0 / 120.0)
    c67 = 1.0 / 720.0 + r * (1.0 / 5040.0)
    c89 = 1.0 / 40320.0 + r * (1.0 / 362880.0)
    c1011 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0)
    c1213 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0)
    tail = (c23 + c45 * r2) + ((c67 + c89 * r2) + (c1011 + c1213 * r2) * r4) * r4
    p = 1.0 + (r + r2 * tail)  # the 1 added last: the small terms' rounding errors shrink
    k_int = float_bits(shifted) - _ROUND_BITS  # k as an integer, in [-1076, 0]
    k_half = k_int >> 1
    return p * bits_float((k_half + 1023) << 52) * bits_float((k_int - k_half + 1023) << 52)


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


# ---------------------------------------------------------------------------------------------
# The records: phi and its derivatives in NumPy, gamma and the Gaussian closed forms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedForms:
    """Gaussian expectations of a piecewise-linear activation, ``u = sqrt(q) z``, z ~ N(0, 1).

    phi is linear on each half-line, so ``phi'' = 0`` almost everywhere (``E[phi'' phi] = 0``),
    ``E[phi(u)^2]`` is proportional to ``q`` and the moments of ``phi'`` do not depend on ``q``.

    Attributes
    ----------
    phi2 : float
        ``E[phi(u)^2] / q``.
    dphi2, dphi4 : float
        ``E[phi'(u)^2]`` and ``E[phi'(u)^4]``.
    phi_phi : callable (q, c) -> float
        ``E[phi(u1) phi(u2)]`` for two pre-activations of variance ``q`` and correlation ``c``.
    dphi_dphi : callable c -> float
        ``E[phi'(u1) phi'(u2)]`` at correlation ``c``.

    Notes
    -----
    ReLU by the arc-cosine kernel of degree 1 and 0 (Cho & Saul 2009), with ``theta = arccos c``.
    """

    phi2: float
    dphi2: float
    dphi4: float
    phi_phi: Callable[[float, float], float]
    dphi_dphi: Callable[[float], float]


@dataclass(frozen=True)
class Activation:
    """Everything about one activation: its kernel code, phi in NumPy, gamma, closed forms.

    Attributes
    ----------
    name : str
    code : int
        What kernels branch on (``LINEAR``, ``TANH``, ``RELU``, ``SIGMOID``).
    phi, dphi, d2phi : callable ndarray -> ndarray
        phi(a), phi'(a) and phi''(a) of the pre-activation ``a``, elementwise, float64, any shape
        (relu'(0) = 0; a NaN stays NaN).
    gamma : float
        sup |phi'|, the gamma of Pascanu, Mikolov & Bengio 2013, section 3.2.
    closed_forms : ClosedForms or None
        Gaussian expectations in closed form; None where theory integrates numerically.
    """

    name: str
    code: int
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    d2phi: Callable[[np.ndarray], np.ndarray]
    gamma: float
    closed_forms: ClosedForms | None = None


def _logistic(a):
    e = np.exp(-np.abs(a))  # never overflows
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _logistic_d1(a):
    s = _logistic(a)
    return s * (1.0 - s)


def _logistic_d2(a):
    s = _logistic(a)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _tanh_d2(a):
    t = np.tanh(a)
    return -2.0 * t * (1.0 - t**2)


def _zeros(a):
    return np.zeros_like(a, dtype=np.float64)


def _relu_phi_phi(q, c):
    return q * (math.sqrt(max(0.0, 1.0 - c * c)) + (math.pi - math.acos(c)) * c) / (2.0 * math.pi)


_RECORDS = (
    Activation(
        "linear",
        LINEAR,
        phi=lambda a: np.array(a, dtype=np.float64, copy=True),
        dphi=lambda a: np.ones_like(a, dtype=np.float64),
        d2phi=_zeros,
        gamma=1.0,
        closed_forms=ClosedForms(1.0, 1.0, 1.0, lambda q, c: q * c, lambda c: 1.0),
    ),
    Activation(
        "tanh",
        TANH,
        phi=np.tanh,
        dphi=lambda a: 1.0 - np.tanh(a) ** 2,
        d2phi=_tanh_d2,
        gamma=1.0,
    ),
    Activation(
        "relu",
        RELU,
        phi=lambda a: np.maximum(a, 0.0),
        dphi=lambda a: np.where(np.isnan(a), np.nan, (a > 0.0).astype(np.float64)),
        d2phi=_zeros,
        gamma=1.0,
        # phi(u)^2 = q z^2 [z > 0], phi'^2 = phi'^4 = [z > 0]; P(u1 > 0, u2 > 0) below
        closed_forms=ClosedForms(
            0.5, 0.5, 0.5, _relu_phi_phi, lambda c: (math.pi - math.acos(c)) / (2.0 * math.pi)
        ),
    ),
    Activation(
        "sigmoid", SIGMOID, phi=_logistic, dphi=_logistic_d1, d2phi=_logistic_d2, gamma=0.25
    ),
)

#: Public activation names -> kernel codes (what the models hand to the kernels).
ACTIVATIONS = {a.name: a.code for a in _RECORDS}
_BY_NAME = {a.name: a for a in _RECORDS}


def record(name):
    """The `Activation` record of ``name``.

    Raises
    ------
    ValueError
        When ``name`` is not one of ``ACTIVATIONS``.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        allowed = ", ".join(ACTIVATIONS)
        raise ValueError(f"activation must be one of {allowed}; got {name!r}") from None
