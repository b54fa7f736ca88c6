"""Norms of Jacobian products across time and depth: ln ||.||_2 and ln ||.||_F at every step.

The product grows by one step factor at a time, ``P <- P @ At`` (`rnnsim.kernels.linalg`:
backward ``P_k = P_{k+1} J_{k+1}``, forward ``G_t = G_{t-1} J_t^T``), and is renormalised after
every step (Frobenius norm 1) with its scale carried as a natural log, so 100,000 steps of an
exploding or vanishing network stay finite.

The spectral norm of every product comes from Lanczos iteration on ``P P^T`` (full
re-orthogonalisation), warm-started from the previous step's top singular vector on the fixed end;
it stops when the residual of the top Ritz pair is below ``tol`` times the Ritz value (then some
eigenvalue lies within that relative distance) and falls back to a LAPACK SVD when it has not
converged after ``maxit`` iterations. It runs on one core while the other cores form the next
product (`push_and_record`), which does not need it.

Layers, as in stumpy: the kernels `rnn_jacobian_norms` and `mlp_jacobian_norms` walk the chain;
`push_and_record` is one step of it, with the parallel region `_lanczos_and_product` beneath;
`top_singular` is the serial Lanczos kernel. The public wrapper is `rnnsim.jacobians.jacobian_norms`.
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from rnnsim.kernels.jit import JIT
from rnnsim.kernels.linalg import column_chunks, product_columns, product_share, step_factor
from rnnsim.kernels.mlp import layer_offsets, state_offsets


@njit(**JIT)
def renormalise(P):
    """Divide ``P`` in place by its Frobenius norm; return ln ||P||_F (-inf for P = 0)."""
    flat = P.reshape(-1)
    s = np.dot(flat, flat)
    if s == 0.0:
        return -np.inf
    inv = 1.0 / math.sqrt(s)
    for i in range(flat.size):
        flat[i] *= inv
    return 0.5 * math.log(s)


@njit(**JIT)
def tridiag_top(alpha, beta, m, s):
    """Largest eigenvalue of the symmetric tridiagonal T (diagonal alpha[:m], off-diagonal
    beta[:m-1]) and its unit eigenvector written into s[:m].

    The eigenvalue by bisection on the Sturm sequence count (to rounding), the eigenvector by two
    steps of inverse iteration with theta I - T, which is positive semi-definite for the top
    eigenvalue theta, so its LDL^T factorisation needs no pivoting.
    """
    lo = np.inf
    hi = -np.inf
    for i in range(m):
        r = 0.0
        if i > 0:
            r += abs(beta[i - 1])
        if i < m - 1:
            r += abs(beta[i])
        lo = min(lo, alpha[i] - r)
        hi = max(hi, alpha[i] + r)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        count = 0  # eigenvalues > mid
        q = 1.0
        for i in range(m):
            q = alpha[i] - mid - (beta[i - 1] * beta[i - 1] / q if i > 0 else 0.0)
            if q == 0.0:
                q = -1e-300
            if q > 0.0:
                count += 1
        if count >= 1:
            lo = mid
        else:
            hi = mid
    theta = hi
    shift = theta + 4e-16 * max(abs(theta), 1e-300)
    d = np.empty(m)
    for i in range(m):
        s[i] = 1.0
    for _ in range(2):
        # solve (shift I - T) y = s by LDL^T (tridiagonal, positive definite)
        for i in range(m):
            d[i] = shift - alpha[i]
            if i > 0:
                lfac = -beta[i - 1] / d[i - 1]
                d[i] -= lfac * (-beta[i - 1])
                s[i] -= lfac * s[i - 1]
            if d[i] <= 0.0:
                d[i] = 1e-300
        s[m - 1] /= d[m - 1]
        for i in range(m - 2, -1, -1):
            s[i] = (s[i] + beta[i] * s[i + 1]) / d[i]
        nrm = 0.0
        for i in range(m):
            nrm += s[i] * s[i]
        nrm = math.sqrt(nrm)
        for i in range(m):
            s[i] /= nrm
    return theta


@njit(**JIT)
def top_singular(P, lanczos):
    """Largest squared singular value of ``P`` by Lanczos on ``P P^T`` started from ``lanczos.u``.

    Parameters
    ----------
    P : float64 array (m, r).
    lanczos : `Lanczos`. ``u`` (m,), start vector (need not be normalised), is overwritten with
        the top left singular vector found; stop when ||P P^T y - theta y|| <= ``tol`` * theta for
        the top Ritz pair (theta, y), or after ``maxit`` Lanczos steps with the SVD fallback;
        ``basis`` (>= maxit + 1, m) is the workspace for the Lanczos vectors.

    Returns
    -------
    theta : float, ||P||_2^2.
    iterations : int, Lanczos steps taken; -1 when the SVD fallback was used.

    Notes
    -----
    Lanczos with full re-orthogonalisation (twice); the residual bound |lambda - theta| <= ||r||
    (Parlett, The symmetric eigenvalue problem, Thm 4.5.1) gives the relative error <= tol.
    """
    u, Qb, tol, maxit = lanczos
    m = P.shape[0]
    kmax = min(maxit, m)
    nu = math.sqrt(np.dot(u, u))
    if not nu > 0.0 or not math.isfinite(nu):
        u[:] = 1.0
        nu = math.sqrt(float(m))
    for i in range(m):
        Qb[0, i] = u[i] / nu
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    s_top = np.zeros(kmax)
    theta = 0.0
    for j in range(kmax):
        w = np.dot(P, np.dot(Qb[j], P))
        alpha[j] = np.dot(Qb[j], w)
        for _ in range(2):
            c = np.dot(Qb[: j + 1], w)
            w -= np.dot(c, Qb[: j + 1])
        b = math.sqrt(np.dot(w, w))
        beta[j] = b
        if j == 0:
            theta = alpha[0]
            s_top[0] = 1.0
        else:
            theta = tridiag_top(alpha, beta, j + 1, s_top)
        if b * abs(s_top[j]) <= tol * theta or b == 0.0:
            u[:] = np.dot(s_top[: j + 1], Qb[: j + 1])
            return theta, j + 1
        if j + 1 < kmax:
            for i in range(m):
                Qb[j + 1, i] = w[i] / b
    # not converged: exact SVD
    U, s, _ = np.linalg.svd(P, full_matrices=False)
    u[:] = U[:, 0]
    return s[0] * s[0], -1


LANCZOS_STEP_COLUMNS = 10  # product columns that take as long as one Lanczos step (P 128 x 128)


# The records a chain of products passes along (namedtuples: Numba reads their fields like a
# struct, and the kernels' on-disk cache keeps working).
Lanczos = namedtuple("Lanczos", ["u", "basis", "tol", "maxit"])
Lanczos.__doc__ = """The warm-started Lanczos run of one chain (`top_singular`): ``u`` (m,), start
vector, overwritten with the top left singular vector found; ``basis`` (>= maxit + 1, m),
workspace for the Lanczos vectors; ``tol`` and ``maxit``, the stopping rule."""
NormRow = namedtuple("NormRow", ["log_spectral", "log_frobenius", "iterations"])
NormRow.__doc__ = """One sample's row of the outputs, written in place: float64 (S,), float64 (S,)
and int64 (S,), one column per step (layer)."""
Pending = namedtuple("Pending", ["column", "scale", "iterations"])
Pending.__doc__ = """The newest product P of a chain, whose spectral norm is still to be recorded:
its ``column`` of the outputs (-1: none, P is the identity or has become exactly 0), its log
scale ``scale`` (P is stored renormalised) and ``iterations``, the Lanczos steps of the last
norm recorded (0: none yet; -1: the SVD fallback), by which the next run's share of the work
is guessed."""


@njit(**JIT, parallel=True)
def _lanczos_and_product(P, At, Pnew, lanczos, run, extra, chunks, routines):
    """Thread 0 runs `top_singular` on P (when ``run``) and multiplies ``extra`` fewer columns of
    ``Pnew = P At`` to make up for it (`product_share`); the other threads multiply the rest. The
    product does not need the norm, so the two overlap.

    Returns
    -------
    float64 array (2,): theta and the Lanczos steps of `top_singular` (zeros when not ``run``).
    """
    result = np.zeros(2)
    for c in prange(chunks):
        if c == 0 and run:
            theta, it = top_singular(P, lanczos)
            result[0] = theta
            result[1] = it
        product_share(P, At, Pnew, routines, c, chunks, extra)
    return result


@njit(**JIT)
def push_and_record(P, At, Pnew, last, k, lanczos, row, routines):
    """One step of a renormalised product, ``Pnew <- P @ At / ||P @ At||_F``, with the log norms
    of P recorded beside it.

    Parameters
    ----------
    P : float64 array (m, r), the newest product, described by ``last`` (`Pending`); its spectral
        norm (`top_singular` with ``lanczos``, a `Lanczos`) is computed while the product runs
        (`_lanczos_and_product`) and written to ``row`` (a `NormRow`) at ``last.column``.
    At : float64 array (r, p), the step factor (`rnnsim.kernels.linalg.step_factor`).
    Pnew : float64 array (m, p), written: the product of column ``k``, whose log Frobenius norm
        goes to ``row`` at ``k``; its spectral norm waits for the next call (or `record_spectral`).
    routines : int64 array, `rnnsim.kernels.linalg.routine_addresses()`.

    Returns
    -------
    Pending : of Pnew, column ``k``; column -1 when the product became exactly 0, whose log norms
    are then -inf from column ``k`` on.
    """
    run = last.column >= 0
    # the Lanczos run beside this product takes about as many steps as the last one did
    last_its = last.iterations if run else 0
    extra = Pnew.shape[1] if last_its < 0 else min(Pnew.shape[1], LANCZOS_STEP_COLUMNS * last_its)
    chunks = column_chunks(P.shape[0], At.shape[1])
    if chunks == 1:
        if run:
            record_spectral(P, last, lanczos, row)
        product_columns(P, At, Pnew, routines, 0, Pnew.shape[1])
    else:
        result = _lanczos_and_product(P, At, Pnew, lanczos, run, extra, chunks, routines)
        if run:
            _store_spectral(result[0], int(result[1]), last, row)
    its = row.iterations[last.column] if run else last.iterations
    lf = renormalise(Pnew)
    if lf == -np.inf:
        row.log_spectral[k] = -np.inf
        row.log_frobenius[k] = -np.inf
        return Pending(-1, last.scale, its)
    row.log_frobenius[k] = last.scale + lf
    return Pending(k, last.scale + lf, its)


@njit(**JIT)
def record_spectral(P, last, lanczos, row):
    """The spectral norm of P (`top_singular`), the product that ``last`` (`Pending`) describes,
    into ``row`` (`NormRow`) at ``last.column``, with its Lanczos steps."""
    theta, it = top_singular(P, lanczos)
    _store_spectral(theta, it, last, row)


@njit(**JIT)
def _store_spectral(theta, it, last, row):
    """The log spectral norm of the product ``last`` (`Pending`) describes, whose renormalised
    form has ``||.||_2^2 = theta``, and its ``it`` Lanczos steps, into ``row`` (`NormRow`)."""
    row.log_spectral[last.column] = last.scale + 0.5 * math.log(theta)
    row.iterations[last.column] = it


@njit(**JIT)
def _start(row, k0, m):
    """Start a chain at column ``k0`` of ``row`` (`NormRow`) with the identity (m, m), whose norms
    are known (ln 1 and ln sqrt(m)); returns its `Pending`, with nothing to record."""
    row.log_spectral[k0] = 0.0
    row.log_frobenius[k0] = 0.5 * math.log(m)
    return Pending(-1, 0.0, 0)


@njit(**JIT)
def _dead(row, k):
    """Column ``k`` of a chain whose product became exactly 0: both log norms are -inf."""
    row.log_spectral[k] = -np.inf
    row.log_frobenius[k] = -np.inf


@njit(**JIT)
def rnn_jacobian_norms(W, H, code, backward, u0, tol, maxit, routines):
    """ln ||.||_2 and ln ||.||_F of dh_T/dh_k (backward) or dh_t/dh_0 (forward), every step.

    Parameters
    ----------
    W : float64 array (n, n).
    H : float64 array (T+1, B, n), states h_0..h_T.
    code : int, activation code.
    backward : bool.
    u0 : float64 array (n,), start vector of the first Lanczos run.
    tol, maxit : Lanczos stopping tolerance and iteration cap (`top_singular`).
    routines : int64 array, `rnnsim.kernels.linalg.routine_addresses()`.

    Returns
    -------
    log_spectral, log_frobenius : float64 arrays (B, T+1); column k is step k (backward:
        dh_T/dh_k; forward: dh_k/dh_0).
    iterations : int64 array (B, T+1), Lanczos steps per product (-1: SVD fallback).
    """
    T = H.shape[0] - 1
    B = H.shape[1]
    n = W.shape[0]
    ls = np.empty((B, T + 1))
    lfro = np.empty((B, T + 1))
    its = np.zeros((B, T + 1), dtype=np.int64)
    At = np.empty((n, n))
    Qb = np.empty((maxit + 1, n))
    h = np.empty(n)
    Pnew = np.empty((n, n))
    for b in range(B):
        P = np.eye(n)
        lanczos = Lanczos(u0.copy(), Qb, tol, maxit)
        row = NormRow(ls[b], lfro[b], its[b])
        last = _start(row, T if backward else 0, n)
        for s in range(1, T + 1):
            t = T - s + 1 if backward else s  # the step whose Jacobian J_t joins the product
            k = t - 1 if backward else t
            if s > 1 and last.column < 0:  # the product is exactly 0
                _dead(row, k)
                continue
            h[:] = H[t, b]
            step_factor(W, h, code, backward, At)
            last = push_and_record(P, At, Pnew, last, k, lanczos, row, routines)
            P, Pnew = Pnew, P
        if last.column >= 0:
            record_spectral(P, last, lanczos, row)
    return ls, lfro, its


# The arguments are the MLP's arrays as `rnnsim.models.JacobianChain.arrays` hands them over
# (params, widths, d_out, Hbuf, B), then the same six as `rnn_jacobian_norms`.
@njit(**JIT)
def mlp_jacobian_norms(params, widths, d_out, Hbuf, B, code, backward, u0, tol, maxit, routines):
    """ln ||.||_2 and ln ||.||_F of dh_L/dh_l (backward) or dh_l/dh_0 (forward), every layer.

    Parameters
    ----------
    params, widths, d_out : the MLP's flat parameters (`rnnsim.kernels.mlp`).
    Hbuf : float64 array, flat layer states from `mlp_forward` for B samples.
    B : int, number of samples.
    code : int; backward : bool.
    u0 : float64 array (n_L,) backward or (n_0,) forward.
    tol, maxit : as for `top_singular`.
    routines : int64 array, `rnnsim.kernels.linalg.routine_addresses()`.

    Returns
    -------
    log_spectral, log_frobenius : float64 arrays (B, L+1), column l is layer l.
    iterations : int64 array (B, L+1).
    """
    L = widths.size - 1
    w_off, _, _ = layer_offsets(widths, d_out)
    s_off, _ = state_offsets(widths, B)
    ls = np.empty((B, L + 1))
    lfro = np.empty((B, L + 1))
    its = np.zeros((B, L + 1), dtype=np.int64)
    m = widths[L] if backward else widths[0]
    Qb = np.empty((maxit + 1, m))
    for b in range(B):
        P = np.eye(m)
        lanczos = Lanczos(u0.copy(), Qb, tol, maxit)
        row = NormRow(ls[b], lfro[b], its[b])
        last = _start(row, L if backward else 0, m)
        for s in range(1, L + 1):
            t = L - s + 1 if backward else s  # layer whose Jacobian joins the product
            k = t - 1 if backward else t
            if s > 1 and last.column < 0:  # the product is exactly 0
                _dead(row, k)
                continue
            n_out = widths[t]
            n_in = widths[t - 1]
            Wl = params[w_off[t - 1] : w_off[t - 1] + n_out * n_in].reshape(n_out, n_in)
            h = Hbuf[s_off[t] + b * n_out : s_off[t] + (b + 1) * n_out]
            At = np.empty((n_out, n_in)) if backward else np.empty((n_in, n_out))
            step_factor(Wl, h, code, backward, At)
            Pnew = np.empty((m, At.shape[1]))
            last = push_and_record(P, At, Pnew, last, k, lanczos, row, routines)
            P = Pnew
        if last.column >= 0:
            record_spectral(P, last, lanczos, row)
    return ls, lfro, its
