"""Theory beside every measurement: mean field, random matrices, Pascanu's bounds.

Three families of predictions, all in plain NumPy (no SciPy, no Numba):

1. **Mean-field signal propagation** through deep random MLPs (Poole et al. 2016; Schoenholz et al.
   2017): the length map and its fixed point ``q_star``, the correlation map and ``c_star``, the slopes
   ``chi1``, ``chi_c``, ``chi_q`` and the depth scales ``xi_q``, ``xi_c``, ``xi_grad``; the critical line
   ``chi1 = 1`` and a phase-diagram table.
2. **Random-matrix references**: moments and upper edge of the Fuss-Catalan law of products of Gaussian
   matrices, exact isometry of orthogonal products, Newman's (1986) Lyapunov spectrum of Gaussian
   products (with a NumPy digamma), and Pennington et al.'s (2017, 2018) first two moments of the
   end-to-end Jacobian spectrum of a deep network.
3. **Recurrent criteria**: Pascanu, Mikolov & Bengio's (2013, §3.2) sufficient condition for vanishing
   and necessary condition for exploding gradients. The theory of their one-unit logistic RNN (§2.3,
   Figs. 3 and 6: fixed points, saddle-node curve, basin boundary, Doya's bifurcation diagram) lives
   with that model in `rnnsim.cliff`.

Each activation's phi, its derivatives, gamma and the Gaussian closed forms of the piecewise-linear
ones come from its record (`rnnsim.kernels.activations.record`).

Notation bridge (REFERENCES §0)
-------------------------------
The papers write ``h^l = W^l phi(h^{l-1}) + b^l`` (pre-activation state); rnnsim's MLP is
``h_l = phi(W_l h_{l-1} + b_l)`` with ``h_0 = x`` (post-activation state). The pre-activation
``a_l = W_l h_{l-1} + b_l`` of rnnsim is the papers' ``h^l``, so the length and correlation maps, ``q_star``
and ``chi1`` are the same. With ``W_ij ~ N(0, sigma_w2 / n)``, ``b_i ~ N(0, sigma_b2)``, an input ``x``
whose entries are distributed as ``phi(sqrt(q_star) z)`` puts the very first pre-activation at the fixed
point (see :func:`fixed_point_input`). ``MLP.random`` takes standard-deviation *scales*
``sigma_w``, ``sigma_b``; :func:`mlp_scales` is the one place that converts.

Quadrature
----------
Gaussian expectations ``E[f(sqrt(q) z)]`` are computed by the trapezoidal rule on a uniform grid in
``z`` over ``[-10, 10]`` (outside it the Gaussian weight is below 2e-22) with step
``h = min(0.25, 1 / (density * sqrt(q)))``. For integrands analytic in a strip (tanh, logistic) the
trapezoidal rule converges exponentially, and because the step shrinks like ``1/sqrt(q)`` the accuracy does
not degrade when ``q_star`` is large. Gauss-Hermite quadrature (``numpy.polynomial.hermite_e``, the method
suggested by REFERENCES §4) is available as ``quadrature="hermite"``; it is excellent for small ``q`` but
converges slowly for large ``q``, because ``phi'(sqrt(q) z)^2`` is a bump of width ``~1/sqrt(q)`` that the
Hermite nodes (spacing ``~pi / sqrt(2 n)`` near 0) undersample: at ``q = 3`` 200 Hermite nodes leave an
error of 2e-8 in ``E[sech^4]``, the default trapezoid grid (277 points) 1e-16. ReLU and linear
expectations use closed forms (arc-cosine kernel for ReLU, Cho & Saul 2009).

Citations
---------
Mean-field formulas are cited by paper and section and written out in full in each docstring:
REFERENCES §4 records their standard forms but not the papers' own equation numbers, so none are
quoted here. Pascanu et al.'s equation numbers (eqs. 5-8) are from REFERENCES §2 [text].

Sign convention of the depth scales
-----------------------------------
``xi = -1 / ln(chi)``: positive when ``chi < 1`` (a signal or gradient *decays* like ``exp(-depth / xi)``),
negative when ``chi > 1`` (it *grows* like ``exp(depth / |xi|)``), ``+inf`` at ``chi = 1`` exactly and
``0`` when ``chi = 0``. ``xi_grad = -1 / ln chi1`` is the depth scale of squared gradient norms
(Schoenholz et al. 2017, §5).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from rnnsim.kernels.activations import ACTIVATIONS, record
from rnnsim.validation import (
    choice,
    finite_float,
    float_vector,
    positive_float,
    positive_int,
)

__all__ = [
    "DENSITY",
    "c_star",
    "chi1",
    "correlation_map",
    "critical_line",
    "critical_sigma_w2",
    "digamma",
    "fixed_point_input",
    "fuss_catalan_density",
    "fuss_catalan_edge",
    "fuss_catalan_moment",
    "gaussian_expectation",
    "gaussian_product_moments",
    "gradient_ratios",
    "init_sigma_w2",
    "length_map",
    "mean_field",
    "mlp_scales",
    "newman_lyapunov",
    "orthogonal_product_moments",
    "pascanu_criteria",
    "pennington_moments",
    "phase_diagram",
    "q_star",
    "rnn_max_lyapunov",
]

#: Default quadrature density: grid points per unit of ``sqrt(q) z`` (see the module docstring).
DENSITY = 8.0
#: Density of the 2-D grids of the correlation map (c*, chi_c within ~1e-14 of density 8: tested).
DENSITY_2D = 4.0
#: Largest variance (sigma_w2, sigma_b2, q) accepted: the trapezoid grid has ~20 DENSITY sqrt(q)
#: points, 160,000 at 1e8 (seconds per expectation); beyond, it would not fit in memory.
MAX_VARIANCE = 1e8
_Z_MAX = 10.0
_H_MAX = 0.25
EULER_GAMMA = 0.57721566490153286061
_ACTIVATION_NAMES = sorted(ACTIVATIONS)


# --------------------------------------------------------------------------------------------------
# Depth scales
# --------------------------------------------------------------------------------------------------


def _depth_scale(chi):
    """``-1 / ln(chi)`` with the conventions of the module docstring."""
    if not np.isfinite(chi):
        return float("nan")
    if chi <= 0.0:
        return 0.0
    if chi == 1.0:
        return float("inf")
    return -1.0 / math.log(chi)


# --------------------------------------------------------------------------------------------------
# Quadrature
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _hermite_rule(n):
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / math.sqrt(2.0 * math.pi)


@lru_cache(maxsize=256)
def _trapezoid_rule(step):
    k = int(math.floor(_Z_MAX / step))
    z = step * np.arange(-k, k + 1, dtype=np.float64)
    w = step * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


def _rule(q, density, quadrature="trapezoid", n_nodes=200):
    if quadrature == "hermite":
        return _hermite_rule(int(n_nodes))
    choice("quadrature", quadrature, ("trapezoid", "hermite"))
    step = _H_MAX if q <= 0.0 else min(_H_MAX, 1.0 / (density * math.sqrt(q)))
    # round the step to 3 significant digits so that the cache of rules stays small
    step = float(f"{step:.3g}")
    return _trapezoid_rule(step)


def gaussian_expectation(f, q, *, density=DENSITY, quadrature="trapezoid", n_nodes=200):
    """``E[f(sqrt(q) z)]`` for a standard Gaussian ``z``, by quadrature.

    Parameters
    ----------
    f : callable
        Vectorised function of a float64 array.
    q : float
        Variance, ``q >= 0``.
    density : float
        Trapezoid grid points per unit of ``sqrt(q) z`` (step ``min(0.25, 1/(density sqrt(q)))``).
    quadrature : {"trapezoid", "hermite"}
        Trapezoidal rule on ``z`` in [-10, 10] (default) or Gauss-Hermite with ``n_nodes`` nodes
        (``numpy.polynomial.hermite_e.hermegauss``, probabilists' weight ``exp(-z^2/2)``).
    n_nodes : int
        Number of Gauss-Hermite nodes (``quadrature="hermite"`` only; at most ~350 before NumPy's
        weights overflow).

    Returns
    -------
    float

    Notes
    -----
    The Gaussian integrals ``Int Dz`` of Poole et al. 2016, §2-3. Convergence of both rules is
    tested in ``tests/test_theory.py``.
    """
    q = finite_float("q", q, minimum=0.0, maximum=MAX_VARIANCE)
    if quadrature == "hermite" and not 2 <= positive_int("n_nodes", n_nodes, 2) <= 350:
        raise ValueError(
            f"n_nodes must be in [2, 350] (NumPy's Hermite weights overflow); got {n_nodes}"
        )
    if quadrature == "trapezoid":
        positive_float("density", density)
    z, w = _rule(q, density, quadrature, n_nodes)
    return float(w @ f(math.sqrt(q) * z))


def _expect(name, kind, q, density):
    """E over z of phi-derived integrands at variance q: the record's closed forms where it has
    them (linear, relu), else quadrature."""
    act = record(name)
    forms = act.closed_forms
    if forms is not None:
        return {
            "phi2": forms.phi2 * q,
            "dphi2": forms.dphi2,
            "d2phi_phi": 0.0,
            "dphi4": forms.dphi4,
        }[kind]
    if kind == "phi2":

        def f(a):
            return act.phi(a) ** 2
    elif kind == "dphi2":

        def f(a):
            return act.dphi(a) ** 2
    elif kind == "dphi4":

        def f(a):
            return act.dphi(a) ** 4
    else:

        def f(a):
            return act.d2phi(a) * act.phi(a)

    z, w = _rule(q, density)
    return float(w @ f(math.sqrt(q) * z))


def _expect2(name, deriv, q, c, density):
    """E[g(u1) g(u2)] with u1 = sqrt(q) z1, u2 = sqrt(q)(c z1 + sqrt(1-c^2) z2), g = phi or phi';
    the record's closed forms where it has them (linear, relu: the arc-cosine kernel)."""
    c = min(1.0, max(-1.0, c))
    act = record(name)
    forms = act.closed_forms
    if forms is not None:
        return forms.dphi_dphi(c) if deriv else forms.phi_phi(q, c)
    g = act.dphi if deriv else act.phi
    z, w = _rule(q, density)
    sq = math.sqrt(q)
    s = math.sqrt(max(0.0, 1.0 - c * c))
    g1 = g(sq * z)
    u2 = sq * (c * z[:, None] + s * z[None, :])
    inner = g(u2) @ w  # E over z2, for each z1
    return float(w @ (g1 * inner))


# --------------------------------------------------------------------------------------------------
# Mean field: length map, q_star
# --------------------------------------------------------------------------------------------------


def mlp_scales(sigma_w2, sigma_b2):
    """Convert the mean-field variances to ``MLP.random``'s standard-deviation scales.

    Parameters
    ----------
    sigma_w2, sigma_b2 : float
        Weight variance times fan-in, and bias variance (the papers' ``sigma_w^2``, ``sigma_b^2``).

    Returns
    -------
    dict
        ``{"sigma_w": sqrt(sigma_w2), "sigma_b": sqrt(sigma_b2)}``, the keyword arguments of
        ``rnnsim.MLP.random`` (weights ``N(0, sigma_w^2 / fan_in)``, biases ``N(0, sigma_b^2)``).

    Notes
    -----
    REFERENCES §0: theory takes variances, the model layer takes scales; this is the one conversion.
    """
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    return {"sigma_w": math.sqrt(sw2), "sigma_b": math.sqrt(sb2)}


def length_map(activation, q, sigma_w2, sigma_b2, *, density=DENSITY):
    """One step of the length (variance) map ``q -> sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``.

    Parameters
    ----------
    activation : str
        One of ``rnnsim.kernels.activations.ACTIVATIONS``.
    q : float or array_like
        Pre-activation variance(s) of layer ``l - 1``, ``>= 0``.
    sigma_w2, sigma_b2 : float
        Weight variance (times fan-in) and bias variance.
    density : float
        Quadrature density (module docstring).

    Returns
    -------
    float or ndarray
        The variance of layer ``l``, same shape as ``q``.

    Notes
    -----
    Poole et al. 2016, §2, and Schoenholz et al. 2017, §2: the length map
    ``q^l = sigma_w^2 Int Dz phi(sqrt(q^{l-1}) z)^2 + sigma_b^2`` (REFERENCES §4).
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    qa = np.asarray(q, dtype=np.float64)
    if np.any(~np.isfinite(qa)) or np.any(qa < 0):
        raise ValueError(f"q must be finite and >= 0; got {q!r}")
    out = np.array([sw2 * _expect(name, "phi2", float(v), density) + sb2 for v in qa.ravel()])
    return float(out[0]) if qa.ndim == 0 else out.reshape(qa.shape)


def _length_slope(name, q, sw2, density):
    """d(length map)/dq = sigma_w2 E[phi'^2 + phi phi''] (Gaussian integration by parts)."""
    return sw2 * (_expect(name, "dphi2", q, density) + _expect(name, "d2phi_phi", q, density))


def _q_star(name, sw2, sb2, density):
    forms = record(name).closed_forms
    if forms is not None:
        k = forms.phi2 * sw2  # length map q -> k q + sb2, exactly (linear, relu)
        if k < 1.0:
            return sb2 / (1.0 - k)
        if k == 1.0 and sb2 == 0.0:
            return float("nan")  # every q is a fixed point
        return float("inf")

    def g(q):
        return sw2 * _expect(name, "phi2", q, density) + sb2 - q

    hi = sw2 + sb2  # phi^2 <= 1 for tanh and the logistic, so g(hi) <= 0
    if hi == 0.0:
        return 0.0
    lo = 0.0
    if g(0.0) <= 0.0:
        # only tanh with sigma_b2 = 0 (phi(0) = 0): q = 0 is a fixed point, stable iff sigma_w2 <= 1
        if sw2 <= 1.0:
            return 0.0
        lo = hi
        while g(lo) <= 0.0:
            lo *= 0.5
            if lo < 1e-300:
                return 0.0
    # safeguarded Newton inside the bracket [lo, hi] with g(lo) > 0 >= g(hi)
    q = 0.5 * (lo + hi)
    for _ in range(200):
        gq = g(q)
        if gq == 0.0:
            return q
        if gq > 0.0:
            lo = q
        else:
            hi = q
        slope = _length_slope(name, q, sw2, density) - 1.0
        step_ok = slope < 0.0
        q_new = q - gq / slope if step_ok else 0.5 * (lo + hi)
        if not (lo < q_new < hi):
            q_new = 0.5 * (lo + hi)
        if abs(q_new - q) <= 1e-16 * max(q, 1e-300) or hi - lo <= 4e-16 * hi:
            q = q_new
            break
        q = q_new
    return q


def q_star(activation, sigma_w2, sigma_b2, *, density=DENSITY):
    """Fixed point of the length map: the pre-activation variance a deep random MLP converges to.

    Parameters
    ----------
    activation : str
        One of ``rnnsim.kernels.activations.ACTIVATIONS``.
    sigma_w2, sigma_b2 : float
        Weight variance (times fan-in) and bias variance, ``>= 0``.
    density : float
        Quadrature density (module docstring).

    Returns
    -------
    float
        ``q_star``; ``0.0`` when the zero fixed point is the stable one (tanh with ``sigma_b2 = 0``,
        ``sigma_w2 <= 1``; linear/relu without bias below criticality); ``inf`` when the variance grows
        without bound (linear with ``sigma_w2 >= 1`` or relu with ``sigma_w2 >= 2``, except the marginal
        case below); ``nan`` for linear at ``(1, 0)`` and relu at ``(2, 0)``, where every ``q`` is fixed.

    Notes
    -----
    Poole et al. 2016, §2: the fixed point ``q* = sigma_w^2 Int Dz phi(sqrt(q*) z)^2 + sigma_b^2``.
    Linear and relu in closed form
    (``q* = sigma_b2 / (1 - k)``, ``k = sigma_w2`` resp. ``sigma_w2 / 2``); tanh and logistic by a
    safeguarded Newton iteration (slope from Gaussian integration by parts) inside a bisection
    bracket, to a residual at rounding level (tested at 1e-12). The root is unique for these maps.
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    return float(_q_star(name, sw2, sb2, density))


def chi1(activation, sigma_w2, sigma_b2, *, density=DENSITY):
    """``chi1 = sigma_w2 E[phi'(sqrt(q*) z)^2]``, the per-layer factor of squared gradient norms.

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float

    Returns
    -------
    float
        For relu ``sigma_w2 / 2`` and for linear ``sigma_w2``, whatever ``q*`` is (both are scale
        invariant).

    Notes
    -----
    Poole et al. 2016, §3 (``chi1``, the slope of the correlation map at c = 1); Schoenholz et al.
    2017, §5 (gradients):
    ``E[(delta^l)^2] = chi1 E[(delta^{l+1})^2]``.
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    return _chi1(name, sw2, _q_star(name, sw2, sb2, density), density)


def _chi1(name, sw2, qs, density):
    forms = record(name).closed_forms
    if forms is not None:
        return forms.dphi2 * sw2  # linear, relu: scale invariant, any q
    if not np.isfinite(qs):  # pragma: no cover - bounded activations always have a finite q*
        return float("nan")
    return sw2 * _expect(name, "dphi2", qs, density)


# --------------------------------------------------------------------------------------------------
# Mean field: correlation map, c_star
# --------------------------------------------------------------------------------------------------


def correlation_map(activation, c, sigma_w2, sigma_b2, *, q=None, density=DENSITY_2D):
    """One step of the correlation map ``c -> [sigma_w2 E[phi(u1) phi(u2)] + sigma_b2] / q``.

    Parameters
    ----------
    activation : str
    c : float
        Correlation of two inputs' pre-activations at layer ``l - 1``, in [-1, 1].
    sigma_w2, sigma_b2 : float
    q : float, optional
        The (common) variance of both pre-activations; default ``q_star`` (then the map sends 1 to 1).
    density : float
        Quadrature density of the 2-D grid.

    Returns
    -------
    float

    Notes
    -----
    Poole et al. 2016, §3, and Schoenholz et al. 2017, §2: the correlation map, with
    ``u1 = sqrt(q) z1``, ``u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2)``;
    relu by the arc-cosine kernel (Cho & Saul 2009).
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    c = float(c)
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"c must be in [-1, 1]; got {c!r}")
    qq = _q_star(name, sw2, sb2, DENSITY) if q is None else positive_float("q", q)
    if not (np.isfinite(qq) and qq > 0.0):
        raise ValueError(
            f"the correlation map needs a finite positive q; q_star is {qq} for "
            f"({activation!r}, sigma_w2={sw2}, sigma_b2={sb2}): pass q explicitly"
        )
    return (sw2 * _expect2(name, False, qq, c, density) + sb2) / qq


def _c_star(name, sw2, sb2, qs, chi, density):
    """Stable fixed point of the correlation map in [0, 1] and the slope chi_c there."""
    if not (np.isfinite(qs) and qs > 0.0):
        if np.isfinite(chi) and chi <= 1.0 and qs == 0.0:
            return 1.0, chi  # ordered phase collapsing to q* = 0: all inputs become parallel
        return float("nan"), float("nan")
    if chi <= 1.0:
        # the map is convex on [0, 1] (non-negative Hermite coefficients) with f(1) = 1 and
        # f'(1) = chi1 <= 1, so c = 1 is the only fixed point in [0, 1] and it is stable
        return 1.0, chi

    def g(c):
        return (sw2 * _expect2(name, False, qs, c, density) + sb2) / qs - c

    def slope(c):
        return sw2 * _expect2(
            name, True, qs, c, density
        )  # Price's theorem: d/dc E[phi phi] = q E[phi' phi']

    g0 = g(0.0)
    if abs(g0) <= 1e-14:
        return 0.0, slope(0.0)
    # bracket: g(0) > 0 (f(0) = (sw2 E[phi]^2 + sb2) / q >= 0); g < 0 just below 1 since f'(1) > 1
    lo, hi = 0.0, None
    delta = 0.5
    while delta > 1e-15:
        if g(1.0 - delta) < 0.0:
            hi = 1.0 - delta
            break
        lo = 1.0 - delta
        delta *= 0.5
    if hi is None:
        return 1.0, chi  # numerically critical
    c = 0.5 * (lo + hi)
    for _ in range(200):
        gc = g(c)
        if gc == 0.0:
            break
        if gc > 0.0:
            lo = c
        else:
            hi = c
        d = slope(c) - 1.0
        c_new = c - gc / d if d != 0.0 else 0.5 * (lo + hi)
        if not (lo < c_new < hi):
            c_new = 0.5 * (lo + hi)
        done = abs(c_new - c) <= 1e-15 or hi - lo <= 1e-15
        c = c_new
        if done:
            break
    return c, slope(c)


def c_star(activation, sigma_w2, sigma_b2, *, density=DENSITY_2D):
    """Stable fixed point of the correlation map in [0, 1].

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float

    Returns
    -------
    float
        1 in the ordered phase (``chi1 <= 1``); below 1 in the chaotic phase (0 for tanh without
        bias); ``nan`` where ``q_star`` is infinite or undetermined.

    Notes
    -----
    Poole et al. 2016, §3 and Fig. 2; Schoenholz et al. 2017, §3. Found by a safeguarded Newton
    iteration (slope by Price's theorem) in a bisection bracket rather than by iterating the map, whose
    convergence is only geometric with ratio ``chi_c -> 1`` near criticality (REFERENCES §4).
    """
    return mean_field(activation, sigma_w2, sigma_b2, density_2d=density)["c_star"]


# --------------------------------------------------------------------------------------------------
# Mean field: everything at one point, critical line, phase diagram
# --------------------------------------------------------------------------------------------------


def mean_field(activation, sigma_w2, sigma_b2, *, density=DENSITY, density_2d=DENSITY_2D):
    """Mean-field theory of a deep random MLP at one point ``(sigma_w2, sigma_b2)``.

    Parameters
    ----------
    activation : str
        One of ``rnnsim.kernels.activations.ACTIVATIONS``.
    sigma_w2 : float
        Weight variance times fan-in, ``W_ij ~ N(0, sigma_w2 / n)``.
    sigma_b2 : float
        Bias variance, ``b_i ~ N(0, sigma_b2)``.
    density, density_2d : float
        Quadrature densities of the 1-D and 2-D integrals.

    Returns
    -------
    dict
        ``activation``, ``sigma_w2``, ``sigma_b2``; ``q_star`` (length fixed point); ``chi1``
        (``sigma_w2 E[phi'^2]`` at ``q*``); ``log_chi1``; ``chi_q`` (slope of the length map at
        ``q*``); ``c_star``, ``chi_c`` (slope of the correlation map at ``c*``); ``xi_q``, ``xi_c``,
        ``xi_grad`` (``-1 / ln`` of ``chi_q``, ``chi_c``, ``chi1``; sign convention in the module
        docstring); ``phase`` ("ordered", "critical" or "chaotic" by ``chi1`` vs 1).

    Notes
    -----
    Poole et al. 2016, §2-3; Schoenholz et al. 2017, §3 (``1/xi_q = -ln[chi1 + sigma_w2
    E[phi'' phi]]``, ``1/xi_c = -ln chi_c``) and §5 (``xi_grad``); REFERENCES §4.
    ``chi_q`` is the derivative of the length map, ``sigma_w2 E[phi'^2 + phi phi'']`` by Gaussian
    integration by parts. Where ``q_star`` is infinite or undetermined, ``chi_q``, ``c_star``,
    ``chi_c``, ``xi_q`` and ``xi_c`` are ``nan`` (``chi1`` stays defined for linear and relu).
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    qs = _q_star(name, sw2, sb2, density)
    x1 = _chi1(name, sw2, qs, density)
    if np.isfinite(qs):
        xq = _length_slope(name, qs, sw2, density)
    else:
        xq = float("nan")
    cs, xc = _c_star(name, sw2, sb2, qs, x1, density_2d)
    if x1 == 1.0:
        phase = "critical"
    else:
        phase = "ordered" if x1 < 1.0 else "chaotic"
    return {
        "activation": name,
        "sigma_w2": sw2,
        "sigma_b2": sb2,
        "q_star": float(qs),
        "chi1": float(x1),
        "log_chi1": math.log(x1) if x1 > 0 else float("-inf"),
        "chi_q": float(xq),
        "c_star": float(cs),
        "chi_c": float(xc),
        "xi_q": _depth_scale(xq),
        "xi_c": _depth_scale(xc),
        "xi_grad": _depth_scale(x1),
        "phase": phase,
    }


def gradient_ratios(activation, sigma_w2, depth, *, sigma_b2=0.0, q_in=1.0, density=DENSITY):
    """Mean-field profile of backpropagated gradient norms through a deep random MLP, layer by layer.

    Unlike ``chi1``, which holds at the fixed point ``q_star``, the pre-activation variances here
    follow the length map from the input on, so the profile is right in the transient layers too.

    Parameters
    ----------
    activation : str
        One of ``rnnsim.kernels.activations.ACTIVATIONS``.
    sigma_w2 : float
        Weight variance times fan-in, ``>= 0`` (see :func:`init_sigma_w2` for named initialisers).
    depth : int
        Number of hidden layers ``L``, ``>= 1``.
    sigma_b2 : float, default 0.0
        Bias variance.
    q_in : float, default 1.0
        Mean square of the input's entries (1 for standard Gaussian inputs), so that the first
        pre-activation has variance ``q_1 = sigma_w2 q_in + sigma_b2``.
    density : float
        Quadrature density (module docstring).

    Returns
    -------
    ndarray, shape (depth + 1,), float64
        ``r_l = ||dL/dh_l|| / ||dL/dh_L||`` for ``l = 0, ..., L`` (``r_L = 1``):
        ``r_l = prod_{k=l+1}^{L} sqrt(sigma_w2 E[phi'(sqrt(q_k) z)^2])`` with ``q_{k+1}`` the length map
        of ``q_k``. Accumulated as a sum of logs, so deep vanishing profiles do not underflow early.

    Notes
    -----
    Schoenholz et al. 2017, §5: ``E[(delta^l)^2] = sigma_w^2 E[phi'(h^{l+1})^2] E[(delta^{l+1})^2]``
    (gradient independence assumed), with the layer variances of the length map (Poole et al. 2016,
    §2); at ``q_k = q_star`` every factor is ``chi1``. ReLU and linear factors are exact
    (``sigma_w2 / 2`` and ``sigma_w2``) at any variance.
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    depth = positive_int("depth", depth)
    q = sw2 * finite_float("q_in", q_in, minimum=0.0) + sb2
    logs = []
    for _ in range(depth):
        logs.append(np.log(sw2 * _expect(name, "dphi2", q, density)))
        q = sw2 * _expect(name, "phi2", q, density) + sb2
    return np.exp(0.5 * np.append(np.cumsum(logs[::-1])[::-1], 0.0))


#: ``n Var[W_ij]`` of each initialiser at gain 1 and equal fan-in and fan-out (rnnsim.init).
_INIT_SIGMA_W2 = {
    "gaussian": 1.0,
    "lecun": 1.0,
    "orthogonal": 1.0,
    "glorot_uniform": 1.0,
    "glorot_normal": 1.0,
    "he": 2.0,
    "uniform": 1.0 / 3.0,
}


def init_sigma_w2(init, gain=1.0):
    """The mean-field weight variance ``sigma_w2 = n Var[W_ij]`` of a named initialiser.

    Parameters
    ----------
    init : str
        An initialiser of ``rnnsim.init`` whose entries have a fixed variance: "gaussian", "lecun",
        "orthogonal", "glorot_uniform", "glorot_normal", "he" or "uniform".
    gain : float, default 1.0
        The initialiser's gain (``MLP.random``'s ``sigma_w``), ``>= 0``.

    Returns
    -------
    float
        ``gain^2`` times 1, except 2 for "he" and 1/3 for "uniform" (``U[-1/sqrt(n), 1/sqrt(n)]``),
        for square layers (Glorot's variance ``2 / (fan_in + fan_out)`` is ``1 / n`` only then).

    Notes
    -----
    Glorot & Bengio 2010, eqs. 1 and 16 (standard and normalised initialisation); He et al. 2015;
    Saxe et al. 2014 (orthogonal: every entry has mean square ``1 / n``). Mean-field theory depends
    on the weights only through this variance (Poole et al. 2016, §2).
    """
    name = choice("init", init, sorted(_INIT_SIGMA_W2))
    return finite_float("gain", gain, minimum=0.0) ** 2 * _INIT_SIGMA_W2[name]


def critical_sigma_w2(activation, sigma_b2, *, density=DENSITY):
    """The weight variance at which ``chi1 = 1`` (edge of chaos) for a given bias variance.

    Parameters
    ----------
    activation : str
    sigma_b2 : float
        Bias variance, ``>= 0``.

    Returns
    -------
    float
        ``sigma_w2`` on the critical line: 1 for linear and for tanh at ``sigma_b2 = 0`` (there
        ``chi1 = 1 + O((sigma_w2 - 1)^2)``, so it is set exactly rather than found numerically); 2 for
        relu (``chi1 = sigma_w2 / 2`` whatever the bias); otherwise the root of ``chi1(sigma_w2) = 1`` by
        bisection to a relative 1e-14.

    Notes
    -----
    Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, §3 and Fig. 1 (the line ``chi1 = 1``).
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    forms = record(name).closed_forms
    if forms is not None:
        return 1.0 / forms.dphi2  # linear 1, relu 2
    if name == "tanh" and sb2 == 0.0:
        return 1.0

    def x1(sw2):
        return _chi1(name, sw2, _q_star(name, sw2, sb2, density), density)

    lo = 1.0 if name == "tanh" else 4.0  # chi1 <= sigma_w2 sup(phi'^2): 1 resp. 1/16
    hi = 2.0 * lo
    while x1(hi) <= 1.0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e8:
            raise ValueError(f"no critical point below sigma_w2 = 1e8 for sigma_b2={sigma_b2!r}")
    while hi - lo > 1e-14 * hi:
        mid = 0.5 * (lo + hi)
        if x1(mid) > 1.0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def critical_line(activation, sigma_b2_values, *, density=DENSITY):
    """The critical line ``chi1 = 1`` as a table, one row per bias variance.

    Parameters
    ----------
    activation : str
    sigma_b2_values : array_like of float
        Bias variances, ``>= 0``.

    Returns
    -------
    pandas.DataFrame
        Columns ``activation``, ``sigma_b2``, ``sigma_w2`` (critical), ``q_star`` at that point.

    Notes
    -----
    Schoenholz et al. 2017, Fig. 1 (the ordered/chaotic boundary); Poole et al. 2016, Fig. 2.
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sb = float_vector("sigma_b2_values", sigma_b2_values)
    rows = []
    for v in sb:
        sw2 = critical_sigma_w2(name, float(v), density=density)
        rows.append(
            {
                "activation": name,
                "sigma_b2": float(v),
                "sigma_w2": sw2,
                "q_star": _q_star(name, sw2, float(v), density),
            }
        )
    return pd.DataFrame(rows)


def phase_diagram(activation, sigma_w2_values, sigma_b2_values, *, density=DENSITY):
    """Mean-field quantities over a ``(sigma_w2, sigma_b2)`` grid, one row per grid point.

    Parameters
    ----------
    activation : str
    sigma_w2_values, sigma_b2_values : array_like of float
        The two axes of the grid (their outer product is evaluated).

    Returns
    -------
    pandas.DataFrame
        One row per ``(sigma_w2, sigma_b2)`` with every key of :func:`mean_field` as a column.

    Notes
    -----
    Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, Figs. 1-2 (phase diagram, depth scales).
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    sw = float_vector("sigma_w2_values", sigma_w2_values)
    sb = float_vector("sigma_b2_values", sigma_b2_values)
    if np.any(sw < 0) or np.any(sb < 0):
        raise ValueError("sigma_w2_values and sigma_b2_values must be >= 0")
    rows = [mean_field(name, float(a), float(b), density=density) for b in sb for a in sw]
    return pd.DataFrame(rows)


def fixed_point_input(activation, sigma_w2, sigma_b2, batch, width, seed=0):
    """An MLP input ``x`` that puts the first pre-activation of rnnsim's MLP at the fixed point.

    rnnsim's MLP treats ``x`` like a post-activation (``a_1 = W_1 x + b_1``, REFERENCES §0), so
    ``x = phi(sqrt(q*) z)`` with ``z ~ N(0, 1)`` i.i.d. gives ``a_1`` the variance
    ``sigma_w2 E[phi^2] + sigma_b2 = q*`` and every layer starts in the mean-field steady state.

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float
    batch, width : int
        Shape of ``x``: ``(batch, width)``.
    seed : int, sequence of int or numpy.random.Generator
        Passed to ``numpy.random.default_rng``.

    Returns
    -------
    ndarray, shape (batch, width), float64

    Notes
    -----
    Poole et al. 2016, §2: the length map at its fixed point.
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    batch = positive_int("batch", batch)
    width = positive_int("width", width)
    qs = q_star(name, sigma_w2, sigma_b2)
    if not np.isfinite(qs):
        raise ValueError(
            f"q_star is {qs} at ({activation!r}, sigma_w2={sigma_w2!r}, sigma_b2={sigma_b2!r}): "
            "no finite fixed point to start from"
        )
    rng = np.random.default_rng(seed)
    return record(name).phi(math.sqrt(qs) * rng.standard_normal((batch, width)))


def rnn_max_lyapunov(activation, sigma_w2):
    """Mean-field largest Lyapunov exponent of the autonomous random RNN ``h_t = phi(W h_{t-1})``.

    Parameters
    ----------
    activation : {"tanh", "linear"}
        Odd activations with ``phi'(0) = 1`` (the origin is a fixed point).
    sigma_w2 : float
        ``g^2``: ``W_ij ~ N(0, g^2 / n)``, no bias.

    Returns
    -------
    float
        ``(1/2) ln chi1``: for ``g < 1`` (and linear) this is ``ln g``, the log spectral radius of ``W``
        at large ``n`` (circular law), the origin being stable; for tanh with ``g > 1``,
        ``chi1 = g^2 E[sech^4(sqrt(q*) z)]`` with ``q* = g^2 E[tanh^2(sqrt(q*) z)]``. The 1/2 because
        ``chi1`` scales squared norms.

    Notes
    -----
    REFERENCES §6 [derived from §4; not a claim of Engelken et al. 2020]: the large-``n``
    approximation, checked against a direct simulation in the tests (finite ``n`` lowers the
    exponent by a few hundredths at ``n = 300``). Sompolinsky, Crisanti & Sommers 1988 for the
    continuous-time analogue (chaos for ``g > 1``).
    """
    name = choice("activation", activation, ("tanh", "linear"))
    sw2 = positive_float("sigma_w2", sigma_w2)
    return 0.5 * math.log(_chi1(name, sw2, _q_star(name, sw2, 0.0, DENSITY), DENSITY))


# --------------------------------------------------------------------------------------------------
# Random-matrix references
# --------------------------------------------------------------------------------------------------

# Bernoulli-number coefficients B_2k / (2k) of the asymptotic series of psi(x), k = 1..8
_PSI_ASYMPTOTIC = (
    1.0 / 12.0,
    -1.0 / 120.0,
    1.0 / 252.0,
    -1.0 / 240.0,
    1.0 / 132.0,
    -691.0 / 32760.0,
    1.0 / 12.0,
    -3617.0 / 8160.0,
)


def digamma(x):
    """The digamma function ``psi(x) = d ln Gamma(x) / dx`` for ``x > 0``, in NumPy.

    Parameters
    ----------
    x : float or array_like
        Positive arguments.

    Returns
    -------
    float or ndarray
        Same shape as ``x``; absolute error below 1e-14 (tested against ``psi(1) = -gamma``,
        ``psi(1/2) = -gamma - 2 ln 2`` and the recurrences for integers and half-integers).

    Notes
    -----
    Abramowitz & Stegun 6.3.5 (recurrence ``psi(x) = psi(x + 1) - 1/x``) shifts the argument to
    ``x >= 10``, where the asymptotic series A&S 6.3.18, ``ln x - 1/(2x) - sum_k B_2k / (2k x^2k)``,
    truncated after ``k = 8``, is accurate to ~1e-17.
    """
    xa = np.asarray(x, dtype=np.float64)
    if np.any(~np.isfinite(xa)) or np.any(xa <= 0.0):
        raise ValueError(
            f"x must be finite and > 0 (digamma of positive arguments only); got {x!r}"
        )
    y = xa.copy()
    acc = np.zeros_like(y)
    for _ in range(11):
        small = y < 10.0
        if not np.any(small):
            break
        acc = acc - np.where(small, 1.0 / y, 0.0)
        y = np.where(small, y + 1.0, y)
    inv2 = 1.0 / (y * y)
    series = np.zeros_like(y)
    for coef in reversed(_PSI_ASYMPTOTIC):
        series = (series + coef) * inv2
    out = acc + np.log(y) - 0.5 / y - series
    return float(out) if xa.ndim == 0 else out


def newman_lyapunov(N, s2=None):
    """Lyapunov spectrum of products of i.i.d. real ``N x N`` Gaussian matrices (Newman 1986).

    Parameters
    ----------
    N : int
        Matrix size, ``>= 1``.
    s2 : float, optional
        Entry variance, ``A_ij ~ N(0, s2)``; default ``1 / N`` (the deep-linear-net scaling).

    Returns
    -------
    ndarray, shape (N,), float64
        ``lambda_i = (1/2) [ln s2 + ln 2 + psi((N - i + 1) / 2)]``, ``i = 1..N``, descending.

    Notes
    -----
    Newman 1986 (Commun. Math. Phys. 103); REFERENCES §5 (flagged there as recalled, but it follows from
    the QR construction: after a Haar rotation the ``i``-th diagonal entry of ``R`` satisfies
    ``|R_ii|^2 ~ s2 chi^2_{N - i + 1}`` independently, and ``E ln chi^2_k = ln 2 + psi(k/2)``); checked
    against a QR simulation in the tests. Sum rule: ``sum_i lambda_i = E ln|det A|``.
    """
    N = positive_int("N", N)
    s2 = 1.0 / N if s2 is None else positive_float("s2", s2)
    k = np.arange(N, 0, -1, dtype=np.float64)  # N - i + 1 for i = 1..N
    return 0.5 * (math.log(s2) + math.log(2.0) + digamma(0.5 * k))


def fuss_catalan_moment(L, k):
    """The Fuss-Catalan number ``FC_L(k) = binom((L + 1) k, k) / (L k + 1)`` (an exact integer).

    Parameters
    ----------
    L : int
        Number of factors, ``>= 1`` (L = 1: the Catalan numbers).
    k : int
        Moment order, ``>= 0``.

    Returns
    -------
    int

    Notes
    -----
    The ``k``-th moment of the limiting law of the squared singular values of a product of ``L``
    Gaussian matrices with ``N(0, 1/N)`` entries (Penson & Zyczkowski 2011; REFERENCES §5).
    """
    L = positive_int("L", L)
    k = positive_int("k", k, 0)
    return math.comb((L + 1) * k, k) // (L * k + 1)


def gaussian_product_moments(L, k_max=4, s2=1.0):
    """Large-``N`` moments of the squared singular values of ``J = W_L ... W_1``, ``W ~ N(0, s2/N)``.

    Parameters
    ----------
    L : int
        Depth (number of factors), ``>= 1``.
    k_max : int
        Highest moment.
    s2 : float
        Variance times ``N`` of each factor's entries.

    Returns
    -------
    pandas.DataFrame
        One row per ``k = 1..k_max``: ``L``, ``s2``, ``k``, ``moment`` = ``s2^(L k) FC_L(k)`` (mean 1
        for every ``L`` at ``s2 = 1``, exactly even at finite ``N``; second moment ``L + 1``: variance
        ``L``), and ``edge`` (:func:`fuss_catalan_edge`).

    Notes
    -----
    Penson & Zyczkowski 2011 (Fuss-Catalan law); Saxe et al. 2014 §3 and Pennington et al. 2017
    (products of Gaussian layers are far from isometric); REFERENCES §5.
    """
    L = positive_int("L", L)
    k_max = positive_int("k_max", k_max)
    s2 = positive_float("s2", s2)
    edge = fuss_catalan_edge(L, s2)
    return pd.DataFrame(
        {
            "L": L,
            "s2": s2,
            "k": np.arange(1, k_max + 1),
            "moment": [s2 ** (L * k) * fuss_catalan_moment(L, k) for k in range(1, k_max + 1)],
            "edge": edge,
        }
    )


def fuss_catalan_edge(L, s2=1.0):
    """Upper edge of the Fuss-Catalan law: ``s2^L (L + 1)^(L + 1) / L^L`` (~ ``e (L + 1)`` at large L).

    Parameters
    ----------
    L : int
        Number of Gaussian factors (``L = 1``: the Marchenko-Pastur edge 4; ``L = 2``: 27/4).
    s2 : float
        Variance times ``N`` of each factor's entries.

    Returns
    -------
    float
        The largest squared singular value of the product in the limit ``N -> inf``.

    Notes
    -----
    Penson & Zyczkowski 2011, support ``[0, (L + 1)^(L + 1) / L^L]``; REFERENCES §5.
    """
    L = positive_int("L", L)
    s2 = positive_float("s2", s2)
    return s2**L * float(L + 1) ** (L + 1) / float(L) ** L


def fuss_catalan_density(L, n_points=400, s2=1.0):
    """Density of the Fuss-Catalan law on ``(0, edge)``, from its exact parametrisation.

    Parameters
    ----------
    L : int
        Number of Gaussian factors.
    n_points : int
        Number of points (denser near both ends).
    s2 : float
        Variance times ``N`` of the factors (rescales ``x`` by ``s2^L``).

    Returns
    -------
    pandas.DataFrame
        Columns ``L``, ``s2``, ``x`` (squared singular value, increasing) and ``density``.

    Notes
    -----
    Haagerup & Moller 2013; Neuschel 2014: for ``0 < u < pi / (L + 1)``,
    ``x(u) = sin((L+1)u)^(L+1) / (sin(u) sin(L u)^L)`` and
    ``density = sin(u)^2 sin(L u)^(L-1) / (pi sin((L+1)u)^L)``; ``L = 1`` is Marchenko-Pastur at ratio 1.
    The tests integrate it to check normalisation and the moments ``FC_L(k)``.
    """
    L = positive_int("L", L)
    n_points = positive_int("n_points", n_points, 2)
    s2 = positive_float("s2", s2)
    t = (np.arange(n_points) + 0.5) / n_points
    u = (math.pi / (L + 1)) * 0.5 * (1.0 - np.cos(math.pi * t))  # Chebyshev-like spacing
    x, dens = _fc_param(L, u)
    order = np.argsort(x)
    scale = s2**L
    return pd.DataFrame({"L": L, "s2": s2, "x": x[order] * scale, "density": dens[order] / scale})


def _fc_param(L, u):
    su, sl, sl1 = np.sin(u), np.sin(L * u), np.sin((L + 1) * u)
    x = sl1 ** (L + 1) / (su * sl**L)
    dens = su**2 * sl ** (L - 1) / (math.pi * sl1**L)
    return x, dens


def orthogonal_product_moments(L, k_max=4, s2=1.0):
    """Moments of the squared singular values of a product of ``L`` scaled orthogonal matrices.

    Parameters
    ----------
    L : int
    k_max : int
    s2 : float
        Each factor is ``sqrt(s2) O`` with ``O`` orthogonal.

    Returns
    -------
    pandas.DataFrame
        One row per ``k``: ``L``, ``s2``, ``k``, ``moment = s2^(L k)`` (every squared singular value
        equals ``s2^L``: an exact isometry at ``s2 = 1``, zero variance at every depth).

    Notes
    -----
    Saxe et al. 2014, Fig. 6; Pennington et al. 2017 (``S_WW^T = 1 / sigma_w^2`` for orthogonal W);
    REFERENCES §5.
    """
    L = positive_int("L", L)
    k_max = positive_int("k_max", k_max)
    s2 = positive_float("s2", s2)
    k = np.arange(1, k_max + 1)
    return pd.DataFrame({"L": L, "s2": s2, "k": k, "moment": s2 ** (L * k)})


def pennington_moments(activation, L, sigma_w2, sigma_b2, weights="gaussian"):
    """First two moments of the spectrum of ``J J^T`` for a deep random network at its fixed point.

    Parameters
    ----------
    activation : str
    L : int
        Depth.
    sigma_w2, sigma_b2 : float
    weights : {"gaussian", "orthogonal"}
        Distribution of the weight matrices (``s_1 = -1`` resp. ``0``).

    Returns
    -------
    dict
        ``q_star``, ``chi1``, ``mu1 = E[phi'^2]``, ``mu2 = E[phi'^4]``, ``m1 = chi1^L``,
        ``m2 = m1^2 (1 + L (mu2 / mu1^2 - 1 - s_1))`` and ``variance = m2 - m1^2``.

    Notes
    -----
    Pennington, Schoenholz & Ganguli 2017, §3, and 2018 (S-transforms multiply; the normalised
    variance ``m2 / m1^2 - 1`` of a free product is the sum of its factors'), as restated in
    REFERENCES §5 [secondary]: ReLU gives ``m2 = m1^2 (L + p) / p`` with ``p = 1/2``; at criticality the
    variance is ``L (mu2 / mu1^2 - 1 - s_1)``. Large-width limit; finite width shrinks the variance
    (keep ``L / N`` small).
    """
    name = choice("activation", activation, _ACTIVATION_NAMES)
    L = positive_int("L", L)
    choice("weights", weights, ("gaussian", "orthogonal"))
    sw2 = finite_float("sigma_w2", sigma_w2, minimum=0.0, maximum=MAX_VARIANCE)
    sb2 = finite_float("sigma_b2", sigma_b2, minimum=0.0, maximum=MAX_VARIANCE)
    qs = _q_star(name, sw2, sb2, DENSITY)
    if record(name).closed_forms is None:  # tanh, sigmoid: at q*; linear, relu: any q
        mu1 = _expect(name, "dphi2", qs, DENSITY)
        mu2 = _expect(name, "dphi4", qs, DENSITY)
    else:
        mu1 = _expect(name, "dphi2", 1.0, DENSITY)
        mu2 = _expect(name, "dphi4", 1.0, DENSITY)
    s1 = -1.0 if weights == "gaussian" else 0.0
    x1 = sw2 * mu1
    m1 = x1**L
    m2 = m1 * m1 * (1.0 + L * (mu2 / (mu1 * mu1) - 1.0 - s1))
    return {
        "activation": name,
        "L": L,
        "sigma_w2": sw2,
        "sigma_b2": sb2,
        "weights": weights,
        "q_star": float(qs),
        "chi1": x1,
        "mu1": mu1,
        "mu2": mu2,
        "m1": m1,
        "m2": m2,
        "variance": m2 - m1 * m1,
    }


# --------------------------------------------------------------------------------------------------
# Recurrent networks: Pascanu et al. 2013
# --------------------------------------------------------------------------------------------------


def pascanu_criteria(rnn):
    """Pascanu, Mikolov & Bengio's vanishing/exploding conditions for an RNN's recurrent matrix.

    Parameters
    ----------
    rnn : object
        Anything with attributes ``W`` (array, shape (n, n)) and ``activation`` (str), e.g.
        ``rnnsim.RNN``.

    Returns
    -------
    dict
        ``activation``; ``gamma`` (sup |phi'|: 1 for tanh, relu, linear; 1/4 for the logistic);
        ``spectral_norm`` (``lambda_1``, the largest singular value of W); ``spectral_radius``;
        ``threshold`` = 1/gamma; ``vanishing_guaranteed`` (``lambda_1 < 1/gamma``: every step Jacobian
        ``diag(phi'(a_t)) W`` has norm ``<= eta = gamma lambda_1 < 1``, so long-term gradient components
        shrink at least like ``eta^(t-k)``); ``exploding_possible`` (``lambda_1 > 1/gamma``, necessary but
        not sufficient); ``log_bound_per_step`` = ``ln(gamma lambda_1)``, the slope of the upper bound on
        ``ln ||dh_t/dh_k||`` per step.

    Notes
    -----
    Pascanu, Mikolov & Bengio 2013, §3.2, eqs. 6-7 (REFERENCES §2.1); Hochreiter & Schmidhuber 1997 §3.1
    for one unit. The bound holds for rnnsim's post-activation form too: products of step Jacobians in
    the two forms differ only in their end factors (REFERENCES §0).
    """
    if not (hasattr(rnn, "W") and hasattr(rnn, "activation")):
        raise TypeError(
            f"rnn must have attributes W (n, n) and activation (str); got {type(rnn).__name__}"
        )
    name = choice("activation", rnn.activation, _ACTIVATION_NAMES)
    W = np.array(rnn.W, dtype=np.float64)  # a copy: the model's arrays are never touched
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.size == 0 or not np.all(np.isfinite(W)):
        raise ValueError(f"rnn.W must be a finite square (n, n) array; got shape {W.shape}")
    gamma = record(name).gamma
    lam1 = float(np.linalg.norm(W, 2))
    rho = float(np.max(np.abs(np.linalg.eigvals(W))))
    return {
        "activation": name,
        "n_hidden": W.shape[0],
        "gamma": gamma,
        "spectral_norm": lam1,
        "spectral_radius": rho,
        "threshold": 1.0 / gamma,
        "vanishing_guaranteed": bool(lam1 < 1.0 / gamma),
        "exploding_possible": bool(lam1 > 1.0 / gamma),
        "log_bound_per_step": math.log(gamma * lam1) if lam1 > 0 else float("-inf"),
    }
