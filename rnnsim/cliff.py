"""The single-unit cliff of Pascanu, Mikolov & Bengio 2013 (section 2.3, eq. 8, Figs. 3 and 6).

The model: one logistic unit, no input, ``h_0 = sigmoid(x0)``, ``h_t = sigmoid(w h_{t-1} + b)`` for
t = 1..T, loss ``E = (h_T - target)^2`` over the two parameters (w, b), defaults ``x0 = 0.5``,
``T = 50``, ``target = 0.7`` (the paper's pre-activation state ``x_t = w sigma(x_{t-1}) + b``; its
``sigma(x_t)`` is our ``h_t``, REFERENCES §2.3). Its loss and exact gradient (`single_unit_loss`,
`cliff_surface`) come from the kernels of `rnnsim.kernels.cliff`, whose NumPy twin is
`rnnsim.reference.cliff_surface`.

The wall: for w > 0, h_T increases monotonically with b, from the low plateau (h_T near 0) to the
high one (h_T near 1). Where the map is bistable, the jump happens where h_0 sits exactly on the
unstable fixed point, i.e. on the basin boundary ``b = logit(h0) - w h0`` (valid for
``w h0 (1 - h0) > 1``) [derived]: there, deviations grow like ``(w h0 (1 - h0))^T``, so for T = 50
and w >~ 8 the wall is narrower than one ulp of b. The wall is therefore located by bisection
(`cliff_line`), never read off grid samples.

The theory: fixed points and their stability (`single_unit_fixed_points`), the saddle-node curve
(`saddle_node_curve`), the basin boundary (`basin_boundary`), everything at once for the overlay
on the surface (`cliff_theory`) and Doya's bifurcation diagram (`doya_bifurcation`); gradient
descent with and without clipping on the surface (`cliff_trajectories`).
"""

import math

import numpy as np
import pandas as pd

from rnnsim.kernels import cliff as _ck
from rnnsim.kernels.activations import record
from rnnsim.validation import finite_float, float_vector, positive_float, positive_int

__all__ = [
    "H0_PASCANU",
    "RESOLVED_STEP",
    "basin_boundary",
    "cliff_line",
    "cliff_surface",
    "cliff_theory",
    "cliff_trajectories",
    "doya_bifurcation",
    "saddle_node_curve",
    "sigmoid",
    "single_unit_fixed_points",
    "single_unit_loss",
]

#: `cliff_line` calls a wall resolved when h_T changes by less than this across one ulp of b.
RESOLVED_STEP = 0.01


def sigmoid(a):
    """Logistic function ``1 / (1 + exp(-a))``, overflow-free (the logistic's record's phi).

    Parameters
    ----------
    a : float or ndarray
        Pre-activation(s).

    Returns
    -------
    float or ndarray
        Same shape as ``a``.
    """
    return record("sigmoid").phi(np.asarray(a, dtype=np.float64))[()]


#: Pascanu et al.'s x_0 = 0.5 is rnnsim's h_0 = sigmoid(0.5) (REFERENCES §2.3).
H0_PASCANU = float(sigmoid(0.5))


# --------------------------------------------------------------------------------------------------
# The model: its loss and exact gradient
# --------------------------------------------------------------------------------------------------


def single_unit_loss(w, b, *, x0=0.5, T=50, target=0.7):
    """Final state, loss and exact gradient of the single-unit model at points (w, b).

    Parameters
    ----------
    w, b : float or array_like
        Recurrent weight(s) and bias(es), broadcast together.
    x0 : float, default 0.5
        Initial pre-activation, ``h_0 = sigmoid(x0)``.
    T : int, default 50
        Number of steps.
    target : float, default 0.7
        Target of ``h_T``.

    Returns
    -------
    dict
        ``h_T``, ``loss`` (``(h_T - target)^2``), ``dE_dw``, ``dE_db``: floats when ``w`` and ``b``
        are scalars, else float64 arrays of their broadcast shape.

    Notes
    -----
    Pascanu et al. 2013, eq. 8; gradient by forward-mode differentiation along the map
    (`rnnsim.kernels.cliff.single_unit_points`).
    """
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    for name, v in (("w", w), ("b", b)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite everywhere; got {v!r}")
    x0 = finite_float("x0", x0)
    target = finite_float("target", target)
    T = positive_int("T", T)
    out = {k: np.empty(w.size) for k in ("h_T", "loss", "dE_dw", "dE_db")}
    _ck.single_unit_points(w.ravel(), b.ravel(), x0, T, target, *out.values())  # ravel: contiguous
    if w.ndim == 0:
        return {k: float(v[0]) for k, v in out.items()}
    return {k: v.reshape(w.shape) for k, v in out.items()}


def cliff_surface(w_values, b_values, *, x0=0.5, T=50, target=0.7, as_frame=True):
    """The single-unit loss and its exact gradient on a dense (w, b) grid.

    Parameters
    ----------
    w_values : array_like (n_w,)
    b_values : array_like (n_b,)
    x0, T, target : see `single_unit_loss`.
    as_frame : bool, default True
        Return a tidy DataFrame (one row per grid point); with False, a dict of (n_w, n_b) arrays
        ``h_T``, ``loss``, ``dE_dw``, ``dE_db``, ``grad_norm`` plus ``w`` and ``b``.

    Returns
    -------
    pandas.DataFrame or dict
        Columns ``w``, ``b``, ``h_T``, ``loss``, ``dE_dw``, ``dE_db``, ``grad_norm``, ``x0``, ``T``,
        ``target``.

    Notes
    -----
    Pascanu et al. 2013, eq. 8 and Fig. 6. The grid samples the surface; it does not resolve the
    wall, whose width falls below one ulp for large w (see `cliff_line`).
    """
    w = float_vector("w_values", w_values)
    b = float_vector("b_values", b_values)
    x0 = finite_float("x0", x0)
    target = finite_float("target", target)
    T = positive_int("T", T)
    shape = (w.size, b.size)
    hT, E, gw, gb = (np.empty(shape) for _ in range(4))
    _ck.cliff_surface(w, b, x0, T, target, hT, E, gw, gb)
    gnorm = np.hypot(gw, gb)
    if not as_frame:
        return {"w": w, "b": b, "h_T": hT, "loss": E, "dE_dw": gw, "dE_db": gb, "grad_norm": gnorm}
    ww, bb = np.meshgrid(w, b, indexing="ij")
    return pd.DataFrame(
        {
            "w": ww.ravel(),
            "b": bb.ravel(),
            "h_T": hT.ravel(),
            "loss": E.ravel(),
            "dE_dw": gw.ravel(),
            "dE_db": gb.ravel(),
            "grad_norm": gnorm.ravel(),
            "x0": x0,
            "T": T,
            "target": target,
        }
    )


# --------------------------------------------------------------------------------------------------
# The wall, located exactly
# --------------------------------------------------------------------------------------------------


def _peak_near(w, b_lo, b_hi, b_c, x0, T, target, n_scan=81):
    """Max of |dE/db| near the crossing b_c, inside [b_lo, b_hi]: local scan + golden section."""
    hT, _, _, gb = _ck.single_unit(w, b_c, x0, T, target)
    # dh_T/db at the crossing sets the wall's width; scan a window of a few widths.
    r = hT - target
    dh = abs(gb / (2.0 * r)) if r != 0.0 else abs(gb)
    width = 1.0 / dh if dh > 0.0 else (b_hi - b_lo)
    half = min(20.0 * width, 0.5 * (b_hi - b_lo))
    lo = max(b_lo, b_c - half)
    hi = min(b_hi, b_c + half)
    if not hi > lo:
        vals = [(abs(_ck.single_unit(w, x, x0, T, target)[3]), x) for x in (b_lo, b_hi)]
        best = max(vals)
        return best[1], best[0]
    xs = np.linspace(lo, hi, n_scan)
    fs = np.array([abs(_ck.single_unit(w, x, x0, T, target)[3]) for x in xs])
    k = int(np.argmax(fs))
    a = xs[max(k - 1, 0)]
    d = xs[min(k + 1, n_scan - 1)]
    b_star, peak = _ck.golden_max_abs_dEdb(w, a, d, x0, T, target)
    if fs[k] > peak:
        return xs[k], fs[k]
    return b_star, peak


#: The columns of `cliff_line` before its parameter columns, in order.
_WALL_COLUMNS = [
    "w",
    "crossing",
    "b_cliff",
    "b_lo",
    "b_hi",
    "bracket_width",
    "n_bisect",
    "loss_lo",
    "loss_hi",
    "jump",
    "h_T_lo",
    "h_T_hi",
    "b_peak",
    "peak_abs_dE_db",
    "grid_max_abs_dE_db",
    "resolved",
]


def _crossing(w, b_left, b_right, level, x0, T, target):
    """One crossing of ``h_T = level`` inside the grid step [b_left, b_right], bisected to one ulp,
    with the peak of |dE/db| near it: the fields of a `cliff_line` row from ``b_cliff`` on."""
    b_lo, b_hi, n_it = _ck.bisect_level(w, b_left, b_right, level, x0, T, target)
    h_lo, e_lo, _, _ = _ck.single_unit(w, b_lo, x0, T, target)
    h_hi, e_hi, _, _ = _ck.single_unit(w, b_hi, x0, T, target)
    b_c = 0.5 * (b_lo + b_hi)
    b_pk, peak = _peak_near(w, b_left, b_right, b_c, x0, T, target)
    return {
        "b_cliff": b_c,
        "b_lo": b_lo,
        "b_hi": b_hi,
        "bracket_width": b_hi - b_lo,
        "n_bisect": n_it,
        "loss_lo": e_lo,
        "loss_hi": e_hi,
        "jump": e_hi - e_lo,
        "h_T_lo": h_lo,
        "h_T_hi": h_hi,
        "b_peak": b_pk,
        "peak_abs_dE_db": peak,
        "resolved": bool(abs(h_hi - h_lo) < RESOLVED_STEP),
    }


def cliff_line(w_values, b_range=(-10.0, 10.0), *, n_b=2001, level=0.5, x0=0.5, T=50, target=0.7):
    """Locate the cliff of the single-unit loss exactly, for each w.

    For each w the b axis is scanned on ``n_b`` points of ``b_range`` for sign changes of
    ``h_T - level`` (the jump between the low and the high plateau); each bracket is bisected
    until its ends are adjacent floats. The maximum of |dE/db| near each crossing is then found
    by a local scan scaled to the wall's width and a golden-section search on the exact gradient.

    Parameters
    ----------
    w_values : array_like (n_w,)
    b_range : (float, float), default (-10, 10)
    n_b : int, default 2001
        Points of the coarse scan (only used to bracket crossings).
    level : float, default 0.5
        Value of h_T that defines the crossing (between the plateaus).
    x0, T, target : see `single_unit_loss`.

    Returns
    -------
    pandas.DataFrame
        One row per crossing: ``w``, ``crossing`` (0, 1, ... along b), ``b_cliff`` (midpoint of the
        final bracket), ``b_lo``, ``b_hi``, ``bracket_width``, ``n_bisect``, ``loss_lo``,
        ``loss_hi``
        (E at the bracket's ends), ``jump`` (``loss_hi - loss_lo``), ``h_T_lo``, ``h_T_hi``,
        ``b_peak``, ``peak_abs_dE_db``, ``grid_max_abs_dE_db`` (what the coarse scan saw),
        ``resolved`` (h_T changes by less than `RESOLVED_STEP` across the final one-ulp bracket:
        the wall is wider than one ulp, so its peak slope is representable; when False the jump
        happens between two adjacent floats and ``peak_abs_dE_db`` is only what the floats on
        either side show), and ``level``, ``x0``, ``T``, ``target``. w with no crossing give no row.

    Notes
    -----
    Pascanu et al. 2013, section 2.3 and Fig. 6. As T grows the crossing tends to the basin
    boundary ``b = logit(h0) - w h0`` (`cliff_theory`).
    """
    w = float_vector("w_values", w_values)
    lo_b, hi_b = (finite_float("b_range", v) for v in b_range)
    if not hi_b > lo_b:
        raise ValueError(f"b_range must be increasing (lo, hi), got {b_range!r}")
    n_b = positive_int("n_b", n_b, 3)
    level = finite_float("level", level)
    x0 = finite_float("x0", x0)
    target = finite_float("target", target)
    T = positive_int("T", T)
    b = np.linspace(lo_b, hi_b, int(n_b))
    hT, E, gw, gb = (np.empty((w.size, b.size)) for _ in range(4))
    _ck.cliff_surface(w, b, x0, T, target, hT, E, gw, gb)
    rows = []
    for i, wi in enumerate(w):
        s = hT[i] - level
        for k, j in enumerate(np.flatnonzero((s[:-1] > 0) != (s[1:] > 0))):
            row = {"w": wi, "crossing": k}
            row.update(_crossing(wi, b[j], b[j + 1], level, x0, T, target))
            row["grid_max_abs_dE_db"] = float(np.max(np.abs(gb[i, j : j + 2])))
            rows.append(row)
    table = pd.DataFrame(rows, columns=_WALL_COLUMNS)
    return table.assign(level=level, x0=x0, T=T, target=target)


# --------------------------------------------------------------------------------------------------
# The theory: fixed points, saddle-node curve, basin boundary (Pascanu et al. 2013 §2.3, Doya 1993)
# --------------------------------------------------------------------------------------------------


def _logit(h):
    h = np.asarray(h, dtype=np.float64)
    return np.log(h) - np.log1p(-h)


def single_unit_fixed_points(w, b, n_grid=2001):
    """All fixed points of one logistic unit ``h_t = sigmoid(w h_{t-1} + b)`` and their stability.

    Parameters
    ----------
    w, b : float
        Self-weight and bias.
    n_grid : int
        Points of the bracketing grid.

    Returns
    -------
    pandas.DataFrame
        One row per fixed point, by increasing ``h_star``: ``w``, ``b``, ``h_star``, ``x_star``
        (= ``w h_star + b``, Pascanu's pre-activation state), ``slope`` (= ``w h*(1 - h*)``, the map's
        derivative there) and ``stable`` (``|slope| < 1``). One row, or three when
        ``b_low < b < b_high`` (:func:`saddle_node_curve`); exactly on that curve the tangent
        (double) point has slope 1 and, depending on rounding, is reported once (not stable) or
        missed.

    Notes
    -----
    Pascanu et al. 2013, §2.3, eq. 8 and Fig. 3 (after Doya 1993). Fixed points solve
    ``G(x) = w sigmoid(x) + b - x = 0`` in the pre-activation ``x = logit(h)``; all roots lie in
    ``[b + min(w, 0), b + max(w, 0)]``. The grid over that interval also holds the two tangency points
    ``h(1 - h) = 1/w`` (where ``G' = 0``), so ``G`` is monotone between consecutive grid points and every
    root is bracketed by a sign change (or hit exactly), then refined by bisection to rounding level.
    """
    w = finite_float("w", w)
    b = finite_float("b", b)
    n_grid = positive_int("n_grid", n_grid, 3)
    lo, hi = b + min(w, 0.0), b + max(w, 0.0)
    pad = 1e-9 * (1.0 + abs(lo) + abs(hi))
    grid = np.linspace(lo - pad, hi + pad, n_grid)
    if w > 4.0:
        s = math.sqrt(1.0 - 4.0 / w)
        tang = _logit(np.array([(1.0 - s) / 2.0, (1.0 + s) / 2.0]))
        grid = np.union1d(grid, tang[(tang > grid[0]) & (tang < grid[-1])])

    def G(x):
        return w * sigmoid(x) + b - x

    gv = G(grid)
    roots = []
    for i in range(grid.size):
        if gv[i] == 0.0:
            roots.append(float(grid[i]))
        elif i + 1 < grid.size and gv[i] * gv[i + 1] < 0.0:
            a, c = float(grid[i]), float(grid[i + 1])
            ga = gv[i]
            for _ in range(200):
                m = 0.5 * (a + c)
                if m <= a or m >= c:
                    break
                gm = G(m)
                if gm == 0.0:
                    a = c = m
                    break
                if (gm > 0.0) == (ga > 0.0):
                    a, ga = m, gm
                else:
                    c = m
            roots.append(0.5 * (a + c))
    x = np.array(sorted(set(roots)), dtype=np.float64)
    h = sigmoid(x)
    slope = w * h * (1.0 - h)
    return pd.DataFrame(
        {"w": w, "b": b, "h_star": h, "x_star": x, "slope": slope, "stable": np.abs(slope) < 1.0}
    )


def saddle_node_curve(w_values):
    """The saddle-node bifurcation curve of one logistic unit in the ``(w, b)`` plane.

    Parameters
    ----------
    w_values : array_like of float
        Self-weights.

    Returns
    -------
    pandas.DataFrame
        One row per ``w``: ``w``, ``b_low``, ``b_high``, ``h_low_tangent``, ``h_high_tangent``. For
        ``w > 4`` the unit is bistable exactly for ``b_low < b < b_high``: at ``b_low`` the high
        attractor is born (with the unstable middle point) at ``h = (1 + sqrt(1 - 4/w)) / 2``
        (``h_high_tangent``), at ``b_high`` the low attractor is annihilated at
        ``h = (1 - sqrt(1 - 4/w)) / 2`` (``h_low_tangent``). ``b_low + b_high = -w`` (the map's symmetry
        ``h -> 1 - h``, ``b -> -w - b``); the two branches meet in a cusp at ``(w, b) = (4, -2)``;
        ``nan`` for ``w < 4``.

    Notes
    -----
    Pascanu et al. 2013, §2.3 and Fig. 3 (Doya 1993's bifurcations b1, b2). Tangency of
    ``h -> sigmoid(w h + b)`` with the diagonal: ``w h (1 - h) = 1`` and ``b = logit(h) - w h``.
    """
    w = float_vector("w_values", w_values)
    with np.errstate(invalid="ignore"):
        s = np.sqrt(np.where(w >= 4.0, 1.0 - 4.0 / np.where(w == 0, 1.0, w), np.nan))
    h_lo = 0.5 * (1.0 - s)
    h_hi = 0.5 * (1.0 + s)
    return pd.DataFrame(
        {
            "w": w,
            "b_low": _logit(h_hi) - w * h_hi,
            "b_high": _logit(h_lo) - w * h_lo,
            "h_low_tangent": h_lo,
            "h_high_tangent": h_hi,
        }
    )


def basin_boundary(w_values, h0=H0_PASCANU):
    """The bias at which the initial state ``h0`` is exactly the unstable middle fixed point.

    This is the **cliff** of Pascanu et al.'s loss ``E = (h_50 - 0.7)^2``. For ``b`` just above the
    curve, ``h0`` lies above the unstable point and the trajectory goes to the high attractor; just below,
    to the low one. ``h_50`` therefore jumps between the two attractors across the curve, over a band of
    width ``~ slope^(-50)`` in ``b`` (``slope = w h0 (1 - h0)``, the rate at which the unstable point repels),
    so ``|dE/db|`` peaks there and is astronomically large (``slope ~ 1.9`` at ``w = 8``: ``~1e13``).
    The saddle-node curves (:func:`saddle_node_curve`) are *not* cliffs for this ``h0``: crossing them
    creates or destroys an attractor that the trajectory from ``h0`` does not visit, so ``E`` changes
    smoothly there (both facts are checked in the tests by iterating the map).

    Parameters
    ----------
    w_values : array_like of float
        Self-weights.
    h0 : float
        Initial state in (0, 1); default ``sigmoid(0.5)`` (Pascanu's ``x_0 = 0.5``).

    Returns
    -------
    pandas.DataFrame
        One row per ``w``: ``w``, ``b`` (= ``logit(h0) - w h0``; ``nan`` where invalid), ``h0``,
        ``slope`` (= ``w h0 (1 - h0)``) and ``valid`` (``slope > 1``: only then is ``h0`` an *unstable*
        fixed point, i.e. ``w > 1 / (h0 (1 - h0))``, 4.255 for Pascanu's ``h0``; the curve starts on the
        saddle-node curve there).

    Notes
    -----
    Pascanu et al. 2013, §2.3, eq. 8 and Fig. 6 (the walls of the error surface); REFERENCES §2.3.
    """
    w = float_vector("w_values", w_values)
    h0 = finite_float("h0", h0)
    if not 0.0 < h0 < 1.0:
        raise ValueError(f"h0 must be in (0, 1) (a logistic state); got {h0!r}")
    slope = w * h0 * (1.0 - h0)
    valid = slope > 1.0
    b = np.where(valid, float(_logit(h0)) - w * h0, np.nan)
    return pd.DataFrame({"w": w, "b": b, "h0": h0, "slope": slope, "valid": valid})


def cliff_theory(w_values, *, x0=0.5, T=50, target=0.7):
    """Fixed-point geometry of the single logistic unit, for the overlay on the cliff surface.

    The curves come from `saddle_node_curve` and `basin_boundary`:

    - saddle-node curves (where a stable and the unstable fixed point merge, bounding the bistable
      wedge, w >= 4): fixed points with ``w h (1 - h) = 1``, ``h = (1 +- sqrt(1 - 4/w)) / 2``,
      at ``b = logit(h) - w h``;
    - basin boundary of ``h0 = sigmoid(x0)``: ``b = logit(h0) - w h0 = x0 - w h0`` where h0 is an
      unstable fixed point, ``w h0 (1 - h0) > 1``; NaN elsewhere.

    On that boundary ``h_t = h0`` for every t, so the forward-mode recursion for dh_t/db has
    constant coefficients and sums exactly: ``|dE/db| = 2 |h0 - target| s (lam^T - 1) / (lam - 1)``
    with ``s = h0 (1 - h0)``, ``lam = w s`` [derived]; it grows like lam^T.

    Parameters
    ----------
    w_values : array_like (n_w,)
    x0 : float, default 0.5
    T : int, default 50
    target : float, default 0.7

    Returns
    -------
    pandas.DataFrame
        Columns ``w``, ``b_saddle_node_lower``, ``b_saddle_node_upper``, ``b_basin_boundary``,
        ``boundary_abs_dE_db`` (|dE/db| on the basin boundary), ``source`` ("rnnsim.cliff"),
        ``x0``, ``T``, ``target``. NaN where a curve does not exist.

    Notes
    -----
    Doya 1993 and Pascanu et al. 2013, Fig. 3 (bifurcations of one unit); algebra in the module
    docstring [derived].
    """
    w = float_vector("w_values", w_values)
    x0 = finite_float("x0", x0)
    T = positive_int("T", T)
    target = finite_float("target", target)
    h0 = float(sigmoid(x0))
    sn = saddle_node_curve(w)
    lower, upper = sn["b_low"].to_numpy(), sn["b_high"].to_numpy()
    boundary = basin_boundary(w, h0)["b"].to_numpy()
    s = h0 * (1.0 - h0)
    lam = w * s
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        geometric = np.where(lam == 1.0, float(T), (lam**T - 1.0) / (lam - 1.0))
    on_boundary = np.where(np.isfinite(boundary), 2.0 * abs(h0 - target) * s * geometric, np.nan)
    return pd.DataFrame(
        {
            "w": w,
            "b_saddle_node_lower": lower,
            "b_saddle_node_upper": upper,
            "b_basin_boundary": boundary,
            "boundary_abs_dE_db": on_boundary,
            "source": "rnnsim.cliff",
            "x0": x0,
            "T": T,
            "target": target,
        }
    )


def doya_bifurcation(w=5.0, b_values=None, n_init=11, steps=2000):
    """Doya's bifurcation diagram (Pascanu et al. Fig. 3): asymptotic states versus the bias.

    Parameters
    ----------
    w : float
        Fixed self-weight (5.0 in the paper).
    b_values : array_like of float, optional
        Biases; default 301 values on ``[-w/2 - 1.5, -w/2 + 1.5]`` (centred on the cusp line
        ``b = -w/2`` of the symmetric bistable window).
    n_init : int
        Number of initial states ``h0``, evenly spaced on [0.02, 0.98].
    steps : int
        Iterations of the map from each initial state.

    Returns
    -------
    pandas.DataFrame
        One row per ``(b, h0)``: ``w``, ``b``, ``h0``, ``h_final``, ``x_final`` (= ``w h_final + b``,
        Pascanu's state), ``converged`` (last step moved by less than 1e-10), ``attractor``
        ("low"/"high" relative to the unstable middle point when bistable, else "single"), and the
        bifurcation points ``b1`` = ``b_low`` and ``b2`` = ``b_high`` from :func:`saddle_node_curve`
        (``nan`` for ``w <= 4``).

    Notes
    -----
    Pascanu et al. 2013, Fig. 3 (after Doya 1993); REFERENCES §2.3. Between ``b1`` and ``b2`` two
    attractors coexist and the final state depends on the initial one; near ``b1``, ``b2`` convergence
    slows down (critical slowing), which ``converged`` flags.
    """
    w = finite_float("w", w)
    n_init = positive_int("n_init", n_init)
    steps = positive_int("steps", steps)
    if b_values is None:
        b_values = np.linspace(-w / 2 - 1.5, -w / 2 + 1.5, 301)
    b = float_vector("b_values", b_values)
    h0 = np.linspace(0.02, 0.98, n_init) if n_init > 1 else np.array([0.5])
    bb, hh0 = np.meshgrid(b, h0, indexing="ij")
    h = hh0.copy()
    prev = h
    for _ in range(steps):
        prev = h
        h = sigmoid(w * h + bb)
    sn = saddle_node_curve([w]).iloc[0]
    b1, b2 = float(sn["b_low"]), float(sn["b_high"])
    attractor = np.full(bb.shape, "single", dtype=object)
    if np.isfinite(b1):
        for i, bv in enumerate(b):
            if b1 < bv < b2:
                fp = single_unit_fixed_points(w, float(bv))
                if len(fp) == 3:
                    mid = float(fp["h_star"].iloc[1])
                    attractor[i] = np.where(h[i] > mid, "high", "low")
    return pd.DataFrame(
        {
            "w": w,
            "b": bb.ravel(),
            "h0": hh0.ravel(),
            "h_final": h.ravel(),
            "x_final": (w * h + bb).ravel(),
            "converged": (np.abs(h - prev) < 1e-10).ravel(),
            "attractor": attractor.ravel(),
            "b1": b1,
            "b2": b2,
        }
    )


# --------------------------------------------------------------------------------------------------
# Gradient descent on the surface, with and without clipping
# --------------------------------------------------------------------------------------------------


def cliff_trajectories(starts, *, lr, clips=(None,), n_steps=50, x0=0.5, T=50, target=0.7):
    """Gradient descent on the single-unit loss, with and without norm clipping.

    Parameters
    ----------
    starts : sequence of (w, b) pairs
    lr : float
        Learning rate (> 0).
    clips : sequence of float or None, default (None,)
        Norm-clipping thresholds (Pascanu et al. 2013, Algorithm 1); None = no clipping.
    n_steps : int, default 50
    x0, T, target : see `single_unit_loss`.

    Returns
    -------
    pandas.DataFrame
        One row per (start, clip, step): ``start``, ``clip`` (NaN for none), ``step``, ``w``,
        ``b``, ``loss``, ``dE_dw``, ``dE_db``, ``grad_norm`` (before clipping), ``step_length``
        (distance moved in the step that led to this row), ``lr``, ``x0``, ``T``, ``target``.

    Notes
    -----
    Pascanu et al. 2013, Fig. 6 (dashed arrows: rescaled steps) and Algorithm 1.
    """
    lr = positive_float("lr", lr)
    n_steps = positive_int("n_steps", n_steps)
    x0 = finite_float("x0", x0)
    target = finite_float("target", target)
    T = positive_int("T", T)
    starts = [tuple(finite_float("starts", v) for v in s) for s in starts]
    if not starts or any(len(s) != 2 for s in starts):
        raise ValueError(f"starts must be a non-empty sequence of (w, b) pairs, got {starts!r}")
    frames = []
    for si, (w0, b0) in enumerate(starts):
        for clip in clips:
            if clip is not None:
                clip = positive_float("clips", clip)
            out = np.empty((n_steps + 1, 5))
            _ck.gd_trajectory(
                w0, b0, lr, -1.0 if clip is None else clip, n_steps, x0, T, target, out
            )
            steps = np.zeros(n_steps + 1)
            steps[1:] = np.hypot(np.diff(out[:, 0]), np.diff(out[:, 1]))
            frames.append(
                pd.DataFrame(
                    {
                        "start": si,
                        "clip": np.nan if clip is None else clip,
                        "step": np.arange(n_steps + 1),
                        "w": out[:, 0],
                        "b": out[:, 1],
                        "loss": out[:, 2],
                        "dE_dw": out[:, 3],
                        "dE_db": out[:, 4],
                        "grad_norm": np.hypot(out[:, 3], out[:, 4]),
                        "step_length": steps,
                    }
                )
            )
    table = pd.concat(frames, ignore_index=True)
    return table.assign(lr=lr, x0=x0, T=T, target=target)
