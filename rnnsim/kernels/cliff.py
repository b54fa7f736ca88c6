"""The single-unit recurrent network of Pascanu, Mikolov & Bengio 2013 (section 2.3, eq. 8).

One logistic unit, no input: ``h_0 = sigmoid(x0)``, ``h_t = sigmoid(w h_{t-1} + b)`` for
t = 1..T, loss ``E = (h_T - target)^2`` over the two parameters (w, b). (The paper writes the
pre-activation ``x_t = w sigma(x_{t-1}) + b``; its ``sigma(x_t)`` is our ``h_t``.) The exact
gradient is carried forward alongside the map (forward-mode differentiation):

    dh_t/dw = h_t (1 - h_t) (h_{t-1} + w dh_{t-1}/dw),
    dh_t/db = h_t (1 - h_t) (1 + w dh_{t-1}/db),

with ``dh_0/dw = dh_0/db = 0``, and ``dE/dtheta = 2 (h_T - target) dh_T/dtheta``.

Kernels:

- `single_unit`: one (w, b) point -> (h_T, E, dE/dw, dE/db).
- `single_unit_points`: many (w, b) points, ``prange`` over them (independent points).
- `cliff_surface`: a dense (w, b) grid, ``prange`` over the rows (independent grid points).
- `bisect_level`: the b at which h_T crosses a level, to machine precision.
- `golden_max_abs_dEdb`: golden-section search for the maximum of |dE/db| on a bracket.
"""

import math

from numba import njit, prange

from rnnsim.kernels.activations import sigmoid
from rnnsim.kernels.jit import JIT


@njit(**JIT)
def single_unit(w, b, x0, T, target):
    """Run the single-unit map for one (w, b).

    Parameters
    ----------
    w, b : float
        Recurrent weight and bias.
    x0 : float
        Initial pre-activation; ``h_0 = sigmoid(x0)``.
    T : int
        Number of steps.
    target : float
        Target of ``h_T``.

    Returns
    -------
    hT, E, dEdw, dEdb : float
        Final state, loss ``(h_T - target)^2`` and its exact partial derivatives.

    Notes
    -----
    Pascanu et al. 2013, eq. 8 (post-activation form, REFERENCES.md section 2.3).
    """
    h = sigmoid(x0)
    dw = 0.0
    db = 0.0
    for _ in range(T):
        hn = sigmoid(w * h + b)
        s = hn * (1.0 - hn)
        dw = s * (h + w * dw)
        db = s * (1.0 + w * db)
        h = hn
    r = h - target
    return h, r * r, 2.0 * r * dw, 2.0 * r * db


@njit(**JIT, parallel=True)
def single_unit_points(w, b, x0, T, target, hT, E, dEdw, dEdb):
    """`single_unit` at the points ``(w[k], b[k])``.

    Parameters
    ----------
    w, b : float64 arrays (m,)
    x0, T, target : see `single_unit`.
    hT, E, dEdw, dEdb : float64 arrays (m,), written in place
        The four results of `single_unit` at each point.
    """
    for k in prange(w.shape[0]):
        hT[k], E[k], dEdw[k], dEdb[k] = single_unit(w[k], b[k], x0, T, target)


@njit(**JIT, parallel=True)
def cliff_surface(w_values, b_values, x0, T, target, hT, E, dEdw, dEdb):
    """Evaluate the single-unit model on the grid ``w_values x b_values``.

    Parameters
    ----------
    w_values : float64 array (n_w,)
    b_values : float64 array (n_b,)
    x0, T, target : see `single_unit`.
    hT, E, dEdw, dEdb : float64 arrays (n_w, n_b), written in place
        ``[i, j]`` holds the value at ``(w_values[i], b_values[j])``.

    Notes
    -----
    Pascanu et al. 2013, eq. 8 and Fig. 6. Rows (one w each) are independent and split over
    ``prange``; within a row the time loop is outermost and the loop over b innermost, so that it
    vectorises (the logistic is the branch-free `rnnsim.kernels.activations.sigmoid`).
    """
    n_w = w_values.shape[0]
    n_b = b_values.shape[0]
    h_init = sigmoid(x0)
    for i in prange(n_w):
        w = w_values[i]
        h = hT[i]
        dw = dEdw[i]
        db = dEdb[i]
        for j in range(n_b):
            h[j] = h_init
            dw[j] = 0.0
            db[j] = 0.0
        for _ in range(T):
            for j in range(n_b):
                hn = sigmoid(w * h[j] + b_values[j])
                s = hn * (1.0 - hn)
                dw[j] = s * (h[j] + w * dw[j])
                db[j] = s * (1.0 + w * db[j])
                h[j] = hn
        for j in range(n_b):
            r = h[j] - target
            E[i, j] = r * r
            dw[j] = 2.0 * r * dw[j]
            db[j] = 2.0 * r * db[j]


@njit(**JIT)
def bisect_level(w, b_lo, b_hi, level, x0, T, target):
    """Bisect in b for the crossing ``h_T(w, b) = level`` inside ``[b_lo, b_hi]``.

    ``h_T - level`` must change sign between ``b_lo`` and ``b_hi``. Bisection runs until the two
    ends are adjacent floating-point numbers (or equal), so the result is exact to one ulp even
    where the wall is far narrower than any grid spacing.

    Returns
    -------
    b_lo, b_hi : float
        The final bracket (adjacent floats).
    n_iter : int
        Number of bisection steps.
    """
    f_lo = single_unit(w, b_lo, x0, T, target)[0] - level
    n_iter = 0
    while n_iter < 2000:
        mid = 0.5 * (b_lo + b_hi)
        if mid <= b_lo or mid >= b_hi:
            break
        f_mid = single_unit(w, mid, x0, T, target)[0] - level
        if (f_mid > 0.0) == (f_lo > 0.0):
            b_lo = mid
            f_lo = f_mid
        else:
            b_hi = mid
        n_iter += 1
    return b_lo, b_hi, n_iter


@njit(**JIT)
def golden_max_abs_dEdb(w, b_lo, b_hi, x0, T, target):
    """Golden-section search for the b maximising |dE/db| on ``[b_lo, b_hi]``.

    The bracket must contain a single peak (unimodal |dE/db|). Iterates until the bracket stops
    shrinking in floating point.

    Returns
    -------
    b_star, peak : float
        Location and value of the maximum of |dE/db|.
    """
    invphi = (math.sqrt(5.0) - 1.0) / 2.0
    a = b_lo
    d = b_hi
    b1 = d - invphi * (d - a)
    b2 = a + invphi * (d - a)
    f1 = abs(single_unit(w, b1, x0, T, target)[3])
    f2 = abs(single_unit(w, b2, x0, T, target)[3])
    for _ in range(300):
        if not (a < b1 < b2 < d):
            break
        if f1 >= f2:
            d = b2
            b2 = b1
            f2 = f1
            b1 = d - invphi * (d - a)
            f1 = abs(single_unit(w, b1, x0, T, target)[3])
        else:
            a = b1
            b1 = b2
            f1 = f2
            b2 = a + invphi * (d - a)
            f2 = abs(single_unit(w, b2, x0, T, target)[3])
    best = b1 if f1 >= f2 else b2
    return best, max(f1, f2)


@njit(**JIT)
def gd_trajectory(w0, b0, lr, clip, n_steps, x0, T, target, out):
    """Gradient descent on the single-unit loss, optionally with norm clipping.

    Parameters
    ----------
    w0, b0 : float
        Start.
    lr : float
        Learning rate.
    clip : float
        Norm-clipping threshold (Pascanu et al. 2013, Algorithm 1: if ||g|| >= clip, rescale g
        to norm clip); ``clip <= 0`` means no clipping.
    n_steps : int
    out : float64 array (n_steps + 1, 5), written in place
        Row k: w, b, E, dE/dw, dE/db at step k (the gradient before clipping).
    """
    w = w0
    b = b0
    for k in range(n_steps + 1):
        _, e, gw, gb = single_unit(w, b, x0, T, target)
        out[k, 0] = w
        out[k, 1] = b
        out[k, 2] = e
        out[k, 3] = gw
        out[k, 4] = gb
        if k == n_steps:
            break
        norm = math.sqrt(gw * gw + gb * gb)
        if clip > 0.0 and norm >= clip:
            gw = gw * clip / norm
            gb = gb * clip / norm
        w = w - lr * gw
        b = b - lr * gb
