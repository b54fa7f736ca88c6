"""Jacobian products across time and depth: norms, singular values and Lyapunov exponents.

One primitive underlies everything here: the transposed step factor ``At`` of one step (or layer),

- backward (dh_T/dh_k, products grow on the right):  ``P_k = P_{k+1} J_{k+1}``, ``At = diag(d) W``;
- forward (dh_t/dh_0, products grow on the left): ``G_t = G_{t-1} J_t^T`` with ``G = F^T``,
  ``At = W^T diag(d)``;

where ``J = diag(phi'(a)) W`` is the step Jacobian and ``d = phi'(a)`` is read off the next state
(`dphi_from_h`). Either way the product is updated as ``P <- P @ At`` (one BLAS matrix product); its
rows always index the fixed end of the chain (h_T backward, h_0 forward), and its norms, its singular
values and the Lyapunov exponents are those of the Jacobian product itself.

Products are renormalised after every step (Frobenius norm 1) and their scale is carried as a
natural log, so 100,000 steps of an exploding or vanishing network stay finite.

The spectral norm of every product comes from Lanczos iteration on ``P P^T`` (full
re-orthogonalisation), warm-started from the previous step's top singular vector on the fixed end;
it stops when the residual of the top Ritz pair is below ``tol`` times the Ritz value (then some
eigenvalue lies within that relative distance) and falls back to a LAPACK SVD when it has not
converged after ``maxit`` iterations. It runs on one core while the other cores form the next
product (`push_and_record`), which does not need it.

Singular values of deep products (`spectrum_*`) and Lyapunov exponents (`lyapunov_qr`) use QR
re-orthonormalisation: ``Z = A Q = Q' R'`` by Cholesky QR (``Z^T Z = R'^T R'``, one or two passes,
Householder when the Gram matrix is too ill-conditioned), and the accumulated triangular factor
``R = diag(exp(sigma)) Y`` is kept with unit-norm rows ``Y`` and log row scales ``sigma``.
Kernels work in the transposed layout (rows of ``Qt`` are the orthonormal vectors) so that every
matrix product is a BLAS call on rows (`rnnsim.kernels.fortran`: syrk for Gram matrices, potrf,
trsm, trmm). Products, Gram matrices and triangular solves split into column blocks that run on
separate cores (`column_chunks`); the Lyapunov kernel applies each step's Cholesky factor in the
next step, so that the factorisation overlaps with the next product.
"""

import math

import numpy as np
from numba import njit, prange

from rnnsim.kernels.activations import dphi_from_h, phi
from rnnsim.kernels.blas import THREADS
from rnnsim.kernels.fortran import (
    gemm,
    potrf_lower,
    syrk_lower,
    trmm_lower_transposed_left,
    trsm_lower_left,
)
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.mlp import layer_offsets, state_offsets

# ---------------------------------------------------------------------------------------------
# The step factor
# ---------------------------------------------------------------------------------------------


@njit(**JIT)
def step_factor(W, h, code, backward, out):
    """Write the transposed step factor ``At`` of one step or layer into ``out``.

    Parameters
    ----------
    W : float64 array (n_out, n_in), the layer's (or recurrent) weights.
    h : float64 array (n_out,), the state after the step, h = phi(W h_prev + ...).
    code : int, activation code.
    backward : bool. True: ``out = diag(phi') W`` (n_out, n_in), the step Jacobian itself.
        False: ``out = W^T diag(phi')`` (n_in, n_out), its transpose.
    out : float64 array, written in place.

    Notes
    -----
    Pascanu et al. 2013, eq. 5 (in rnnsim's post-activation form, REFERENCES.md section 0).
    """
    n_out, n_in = W.shape
    d = np.empty(n_out)
    for i in range(n_out):
        d[i] = dphi_from_h(code, h[i])
    if backward:
        for i in range(n_out):
            for j in range(n_in):
                out[i, j] = d[i] * W[i, j]
    else:  # a transpose, in 8 x 8 tiles: cache lines are reused and no set is thrashed
        for j0 in range(0, n_in, 8):
            for i0 in range(0, n_out, 8):
                for j in range(j0, min(j0 + 8, n_in)):
                    for i in range(i0, min(i0 + 8, n_out)):
                        out[j, i] = W[i, j] * d[i]


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


# ---------------------------------------------------------------------------------------------
# Spectral norm by warm-started Lanczos
# ---------------------------------------------------------------------------------------------


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
def top_singular(P, u, tol, maxit, Qb):
    """Largest squared singular value of ``P`` by Lanczos on ``P P^T`` started from ``u``.

    Parameters
    ----------
    P : float64 array (m, r).
    u : float64 array (m,), start vector (need not be normalised); overwritten with the top left
        singular vector found.
    tol : float, stop when ||P P^T y - theta y|| <= tol * theta for the top Ritz pair (theta, y).
    maxit : int, at most this many Lanczos steps before the SVD fallback.
    Qb : float64 array (>= maxit + 1, m), workspace for the Lanczos basis.

    Returns
    -------
    theta : float, ||P||_2^2.
    iterations : int, Lanczos steps taken; -1 when the SVD fallback was used.

    Notes
    -----
    Lanczos with full re-orthogonalisation (twice); the residual bound |lambda - theta| <= ||r||
    (Parlett, The symmetric eigenvalue problem, Thm 4.5.1) gives the relative error <= tol.
    """
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


@njit(**JIT, parallel=True)
def _lanczos_and_product(P, At, Pnew, u, tol, maxit, Qb, routines, lanczos, extra, result, chunks):
    """Thread 0 runs `top_singular` on P (when ``lanczos``; theta and iterations into result[0]
    and result[1]) and multiplies ``extra`` fewer columns of ``Pnew = P At`` to make up for it
    (`_product_share`); the other threads multiply the rest. The product does not need the norm,
    so the two overlap.
    """
    for c in prange(chunks):
        if c == 0 and lanczos:
            theta, it = top_singular(P, u, tol, maxit, Qb)
            result[0] = theta
            result[1] = it
        _product_share(P, At, Pnew, routines, c, chunks, extra)


@njit(**JIT)
def push_and_record(P, At, Pnew, u, tol, maxit, Qb, scale, pending, ls, lfro, its, b, k, routines):
    """One step of a renormalised product, ``Pnew <- P @ At / ||P @ At||_F``, with the log norms
    of P recorded beside it.

    P is the product of column ``pending`` of row ``b`` (-1: none, the identity), with log scale
    ``scale``; its spectral norm (`top_singular`, warm-started from ``u``) is computed while the
    product runs (`_lanczos_and_product`) and written to ls[b, pending] with its Lanczos steps.
    Pnew is the product of column ``k``: its log Frobenius norm goes to lfro[b, k], its spectral
    norm waits for the next call (or `record_spectral`).

    Returns
    -------
    (new scale, new pending: k, or -1 when the product became exactly 0, whose log norms are
    then -inf from column ``k`` on).
    """
    lanczos = pending >= 0
    last_its = its[b, pending] if lanczos else 0
    extra = Pnew.shape[1] if last_its < 0 else min(Pnew.shape[1], LANCZOS_STEP_COLUMNS * last_its)
    chunks = column_chunks(P.shape[0], At.shape[1])
    if chunks == 1:
        if lanczos:
            record_spectral(P, u, tol, maxit, Qb, scale, pending, ls, its, b)
        _product_columns(P, At, Pnew, routines, 0, Pnew.shape[1])
    else:
        result = np.zeros(2)
        _lanczos_and_product(
            P, At, Pnew, u, tol, maxit, Qb, routines, lanczos, extra, result, chunks
        )
        if lanczos:
            _store_spectral(result[0], int(result[1]), scale, pending, ls, its, b)
    lf = renormalise(Pnew)
    if lf == -np.inf:
        ls[b, k] = -np.inf
        lfro[b, k] = -np.inf
        return scale, -1
    lfro[b, k] = scale + lf
    return scale + lf, k


@njit(**JIT)
def record_spectral(P, u, tol, maxit, Qb, scale, pending, ls, its, b):
    """The spectral norm of P (`top_singular`), the product of column ``pending`` of row ``b`` with
    log scale ``scale``, into ls[b, pending] and its Lanczos steps into its[b, pending]."""
    theta, it = top_singular(P, u, tol, maxit, Qb)
    _store_spectral(theta, it, scale, pending, ls, its, b)


@njit(**JIT)
def _store_spectral(theta, it, scale, pending, ls, its, b):
    """ls[b, pending] = the log spectral norm of a product with log scale ``scale`` whose
    renormalised form has ``||.||_2^2 = theta``; its[b, pending] = ``it`` Lanczos steps."""
    ls[b, pending] = scale + 0.5 * math.log(theta)
    its[b, pending] = it


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
    routines : int64 array, `rnnsim.kernels.fortran.routine_addresses()`.

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
        u = u0.copy()
        scale = 0.0
        k0 = T if backward else 0
        ls[b, k0] = 0.0
        lfro[b, k0] = 0.5 * math.log(n)
        pending = -1  # the identity's spectral norm is known
        dead = False
        for s in range(1, T + 1):
            t = T - s + 1 if backward else s  # the step whose Jacobian J_t joins the product
            k = t - 1 if backward else t
            if dead:
                ls[b, k] = -np.inf
                lfro[b, k] = -np.inf
                continue
            h[:] = H[t, b]
            step_factor(W, h, code, backward, At)
            scale, pending = push_and_record(
                P, At, Pnew, u, tol, maxit, Qb, scale, pending, ls, lfro, its, b, k, routines
            )
            dead = pending < 0
            P, Pnew = Pnew, P
        if pending >= 0:
            record_spectral(P, u, tol, maxit, Qb, scale, pending, ls, its, b)
    return ls, lfro, its


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
    routines : int64 array, `rnnsim.kernels.fortran.routine_addresses()`.

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
        u = u0.copy()
        scale = 0.0
        l0 = L if backward else 0
        ls[b, l0] = 0.0
        lfro[b, l0] = 0.5 * math.log(m)
        pending = -1  # the identity's spectral norm is known
        dead = False
        for s in range(1, L + 1):
            t = L - s + 1 if backward else s  # layer whose Jacobian joins the product
            k = t - 1 if backward else t
            if dead:
                ls[b, k] = -np.inf
                lfro[b, k] = -np.inf
                continue
            n_out = widths[t]
            n_in = widths[t - 1]
            Wl = params[w_off[t - 1] : w_off[t - 1] + n_out * n_in].reshape(n_out, n_in)
            h = Hbuf[s_off[t] + b * n_out : s_off[t] + (b + 1) * n_out]
            At = np.empty((n_out, n_in)) if backward else np.empty((n_in, n_out))
            step_factor(Wl, h, code, backward, At)
            Pnew = np.empty((m, At.shape[1]))
            scale, pending = push_and_record(
                P, At, Pnew, u, tol, maxit, Qb, scale, pending, ls, lfro, its, b, k, routines
            )
            dead = pending < 0
            P = Pnew
        if pending >= 0:
            record_spectral(P, u, tol, maxit, Qb, scale, pending, ls, its, b)
    return ls, lfro, its


# ---------------------------------------------------------------------------------------------
# QR re-orthonormalisation
# ---------------------------------------------------------------------------------------------


@njit(**JIT)
def column_chunks(k, n):
    """How many column blocks to split the products of a (k, n) re-orthonormalisation into: one
    per core once the blocks are worth a thread. Columns of ``Qt At`` and of ``L^{-1} Z`` are
    independent and the Gram matrix is a sum over them; single-threaded BLAS on each block is
    much faster at these sizes than one multi-threaded call (below n = 100 or so neither pays)."""
    return THREADS if k * n * n >= 1 << 20 else 1


@njit(**JIT)
def _product_columns(Zt, Wt, Znew, routines, c0, c1):
    """Columns c0:c1 of ``Znew = Zt Wt``."""
    if c1 > c0:
        gemm(routines, Zt, Wt[:, c0:c1], Znew[:, c0:c1])


@njit(**JIT)
def _product_share(Zt, Wt, Znew, routines, c, chunks, extra):
    """Thread c's columns (of ``chunks`` threads) of ``Znew = Zt Wt`` when thread 0 also does
    other work that takes as long as ``extra`` columns: the n + extra columns' worth is split
    evenly, and thread 0's share is that much short."""
    total = Znew.shape[1] + extra
    c0 = max(0, c * total // chunks - extra)
    c1 = max(0, (c + 1) * total // chunks - extra)
    _product_columns(Zt, Wt, Znew, routines, c0, c1)


@njit(**JIT, parallel=True)
def _product_blocks(Qt, At, Zt, routines, chunks):
    n = Zt.shape[1]
    for c in prange(chunks):
        _product_columns(Qt, At, Zt, routines, c * n // chunks, (c + 1) * n // chunks)


@njit(**JIT)
def product(Qt, At, routines, chunks):
    """``Qt At`` (k, n) for Qt (k, m), At (m, n), by ``chunks`` column blocks in parallel."""
    Zt = np.empty((Qt.shape[0], At.shape[1]))
    if chunks == 1:
        _product_columns(Qt, At, Zt, routines, 0, Zt.shape[1])
    else:
        _product_blocks(Qt, At, Zt, routines, chunks)
    return Zt


@njit(**JIT, parallel=True)
def _gram_blocks(Zt, routines, chunks):
    k, n = Zt.shape
    parts = np.empty((chunks, k, k))
    for c in prange(chunks):
        syrk_lower(routines, Zt[:, c * n // chunks : (c + 1) * n // chunks], parts[c])
    return parts


@njit(**JIT)
def gram_lower(Zt, routines, chunks):
    """The lower triangle of ``Zt Zt^T`` (k, k) for Zt (k, n), as a sum over ``chunks`` column
    blocks computed in parallel (the strict upper triangle is undefined)."""
    k = Zt.shape[0]
    if chunks == 1:
        G = np.empty((k, k))
        syrk_lower(routines, Zt, G)
        return G
    return _sum_lower(_gram_blocks(Zt, routines, chunks))


@njit(**JIT)
def _sum_lower(parts):
    """The lower triangles of parts (chunks, k, k) summed into parts[0], which is returned."""
    G = parts[0]
    for c in range(1, parts.shape[0]):
        for i in range(G.shape[0]):
            for j in range(i + 1):
                G[i, j] += parts[c, i, j]
    return G


@njit(**JIT, parallel=True)
def _solve_blocks(L, X, routines, chunks):
    n = X.shape[1]
    for c in prange(chunks):
        trsm_lower_left(routines, L, X[:, c * n // chunks : (c + 1) * n // chunks])


@njit(**JIT)
def solve_lower(L, X, routines, chunks):
    """``X <- L^{-1} X`` in place (L (k, k) lower triangular, X (k, n)), by column blocks."""
    if chunks == 1:
        trsm_lower_left(routines, L, X)
    else:
        _solve_blocks(L, X, routines, chunks)


TRIANGLE_BLOCK = 32  # column width of the blocks of a product of two triangular matrices


@njit(**JIT)
def _multiply_upper_block(Ct, Y, routines, c0, c1):
    """Columns c0:c1 of ``Y <- Ct^T Y`` for upper-trapezoidal Y: only its first c1 rows are
    nonzero there, so only the leading c1 x c1 triangle of Ct takes part."""
    rows = min(c1, Y.shape[0])
    trmm_lower_transposed_left(routines, Ct[:rows, :rows], Y[:rows, c0:c1])


@njit(**JIT, parallel=True)
def _multiply_blocks(Ct, Y, routines, chunks):
    r = Y.shape[1]
    blocks = (r + TRIANGLE_BLOCK - 1) // TRIANGLE_BLOCK
    for c in prange(chunks):
        for blk in range(blocks):
            turn, seat = blk // chunks, blk % chunks
            if (seat if turn % 2 == 0 else chunks - 1 - seat) == c:  # snake order: even loads
                c0 = blk * TRIANGLE_BLOCK
                _multiply_upper_block(Ct, Y, routines, c0, min(c0 + TRIANGLE_BLOCK, r))


@njit(**JIT)
def multiply_upper(Ct, Y, routines, chunks):
    """``Y <- Ct^T Y`` in place for Ct (k, k) lower triangular (so Ct^T is upper) and Y (k, r)
    upper trapezoidal (zero below its diagonal, as the accumulated factors R are), by column
    blocks of width `TRIANGLE_BLOCK` in ``chunks`` threads: about a third of the work of a
    triangular-times-dense product (k^3/3 multiply-adds rather than k^3/2 for k = r)."""
    if chunks == 1:
        r = Y.shape[1]
        for c0 in range(0, r, TRIANGLE_BLOCK):
            _multiply_upper_block(Ct, Y, routines, c0, min(c0 + TRIANGLE_BLOCK, r))
    else:
        _multiply_blocks(Ct, Y, routines, chunks)


@njit(**JIT)
def _cholesky_in_place(routines, G):
    """Cholesky factor L (lower, strict upper zeroed) of G (k, k) from its lower triangle, in
    place; False when G is not numerically positive definite."""
    if potrf_lower(routines, G) != 0:
        return False
    k = G.shape[0]
    for i in range(k):
        if not (G[i, i] > 0.0) or not math.isfinite(G[i, i]):
            return False
        for j in range(i + 1, k):
            G[i, j] = 0.0
    return True


@njit(**JIT)
def _cholesky_sine(routines, G):
    """Factor the Gram matrix G (k, k) in place (`_cholesky_in_place`) and return
    ``min_i L_ii / sqrt(G_ii)``, the smallest sine of the angle between a column and the earlier
    ones (1 / that estimates the equilibrated condition number); 0 when Cholesky breaks down."""
    k = G.shape[0]
    gdiag = np.empty(k)
    for i in range(k):
        gdiag[i] = G[i, i]
    if not _cholesky_in_place(routines, G):
        return 0.0
    smin = np.inf
    for i in range(k):
        smin = min(smin, G[i, i] / math.sqrt(gdiag[i]))
    return smin


@njit(**JIT)
def _one_pass(smin, kappa_max):
    """Whether one Cholesky pass is accurate: the sine ``smin`` of `_cholesky_sine` estimates
    the equilibrated condition number as 1 / smin, which must not exceed ``kappa_max``."""
    return smin * kappa_max >= 1.0


@njit(**JIT)
def orthonormalise(Zt, kappa_max, routines, chunks):
    """Orthonormalise the rows of ``Zt`` (k, n), k <= n: ``Zt = Lt Qt`` with Lt lower triangular.
    Zt is overwritten (by Qt, which is then Zt itself, after one Cholesky pass).

    (Equivalently ``Z = Q R`` for Z = Zt^T, R = Lt^T.) Cholesky QR: ``Lt = chol(Zt Zt^T)``,
    ``Qt = Lt^{-1} Zt`` (BLAS syrk, LAPACK potrf, BLAS trsm: `rnnsim.kernels.fortran`, whose
    addresses ``routines`` holds; products split into ``chunks`` column blocks, `column_chunks`).
    Its accuracy depends on the condition number of Z with equilibrated columns (Cholesky's
    errors scale with sqrt(G_ii G_jj)), estimated by ``1 / min_i Lt_ii / sqrt(G_ii)``
    (`_cholesky_sine`): one pass when that is below ``kappa_max``, a second pass (CholQR2) below
    1e5 when the second Gram matrix is within 1e-2 of the identity, Householder (LAPACK)
    otherwise or when Cholesky breaks down.

    Returns
    -------
    Qt : float64 array (k, n), orthonormal rows.
    Lt : float64 array (k, k), lower triangular with non-negative diagonal.
    method : int, 1 one Cholesky pass, 2 two passes, 3 Householder.

    Notes
    -----
    Yamamoto, Nakatsukasa, Yanagisawa & Fukaya 2015 (CholeskyQR2); single-pass orthogonality
    error O(eps kappa^2).
    """
    L1 = gram_lower(Zt, routines, chunks)
    return _orthonormalise_factored(
        Zt, L1, _cholesky_sine(routines, L1), kappa_max, routines, chunks
    )


@njit(**JIT)
def _orthonormalise_factored(Zt, L1, smin, kappa_max, routines, chunks):
    """`orthonormalise` once the Gram matrix of Zt has been factored into L1 by `_cholesky_sine`,
    which returned ``smin``."""
    k = Zt.shape[0]
    if _one_pass(smin, kappa_max):
        solve_lower(L1, Zt, routines, chunks)  # the common case: Zt itself becomes Qt
        return Zt, L1, 1
    if smin * 1e5 >= 1.0:
        Q1 = Zt.copy()
        solve_lower(L1, Q1, routines, chunks)
        L2 = gram_lower(Q1, routines, chunks)
        dev = 0.0
        for i in range(k):
            for j in range(i + 1):
                dev = max(dev, abs(L2[i, j] - (1.0 if i == j else 0.0)))
        if dev <= 1e-2 and _cholesky_in_place(routines, L2):
            solve_lower(L2, Q1, routines, chunks)
            return Q1, np.dot(L2, L1), 2
    Q, R = np.linalg.qr(np.ascontiguousarray(Zt.T))
    Qt = np.ascontiguousarray(Q.T)
    Lt = np.ascontiguousarray(R.T)
    for i in range(k):  # make the diagonal non-negative
        if Lt[i, i] < 0.0:
            for q in range(Qt.shape[1]):
                Qt[i, q] = -Qt[i, q]
            for r in range(i, k):
                Lt[r, i] = -Lt[r, i]
    return Qt, Lt, 3


@njit(**JIT)
def accumulate_triangular(Lt, Y, sigma, routines, chunks):
    """``R <- R' R`` for R = diag(exp(sigma)) Y and R' = Lt^T, in log-scaled form, in place.

    Y (k, r) has unit-norm rows and is upper trapezoidal, sigma (k,) their log scales. New row i is
    ``sum_{j >= i} Lt[j, i] exp(sigma_j) Y[j]``, formed relative to the largest contributing scale
    so that nothing overflows; it is renormalised and its log norm added to its scale.
    """
    k = Y.shape[0]
    mrow = np.full(k, -np.inf)
    for j in range(k):
        sj = sigma[j]
        for i in range(j + 1):  # branch-free, so that it vectorises
            mrow[i] = max(mrow[i], sj if Lt[j, i] != 0.0 else -np.inf)
    smax = -np.inf
    smin = np.inf
    for j in range(k):
        if sigma[j] > -np.inf:
            smax = max(smax, sigma[j])
            smin = min(smin, sigma[j])
    Ct = np.empty((k, k))  # C^T: R' with the scales folded in; only its lower triangle is read
    if smax - smin < 600.0:
        e = np.empty(k)
        for j in range(k):
            e[j] = math.exp(sigma[j] - smax) if sigma[j] > -np.inf else 0.0
        f = np.empty(k)
        for i in range(k):
            f[i] = math.exp(smax - mrow[i]) if mrow[i] > -np.inf else 0.0
        for j in range(k):
            for i in range(j + 1):
                Ct[j, i] = Lt[j, i] * (e[j] * f[i])
    else:
        for j in range(k):
            for i in range(j + 1):
                live = Lt[j, i] != 0.0 and sigma[j] > -np.inf and mrow[i] > -np.inf
                Ct[j, i] = Lt[j, i] * math.exp(sigma[j] - mrow[i]) if live else 0.0
    multiply_upper(Ct, Y, routines, chunks)
    for i in range(k):
        row = Y[i]
        s = np.dot(row, row)
        if s == 0.0 or mrow[i] == -np.inf:
            sigma[i] = -np.inf
            continue
        nrm = math.sqrt(s)
        for q in range(row.size):
            row[q] /= nrm
        sigma[i] = mrow[i] + math.log(nrm)


@njit(**JIT)
def scaled_jacobi_logsv(Y, sigma, tol, max_sweeps):
    """ln of the singular values of ``diag(exp(sigma)) Y`` by one-sided Jacobi in scaled form.

    Rows of Y (unit norm) scaled by exp(sigma) are the columns of G = Y^T diag(exp(sigma)); pairs
    of them are rotated until mutually orthogonal to ``tol`` (|g_p . g_q| <= tol ||g_p|| ||g_q||).
    Scales stay logs throughout, so the singular values may span far beyond float64.

    Returns
    -------
    logsv : float64 array (k,), descending (-inf for exact zeros).
    sweeps : int, sweeps used (max_sweeps + 1 when not converged).

    Notes
    -----
    Hestenes one-sided Jacobi; relative accuracy O(eps kappa(Y)) for column-scaled matrices
    (Demmel & Veselic 1992, Thm 4.3).
    """
    k = Y.shape[0]
    Y = Y.copy()
    s = sigma.copy()
    sweeps = max_sweeps + 1
    for sweep in range(1, max_sweeps + 1):
        rotated = False
        for p in range(k - 1):
            for q in range(p + 1, k):
                if s[p] == -np.inf or s[q] == -np.inf:
                    continue
                if s[p] >= s[q]:
                    i, j = p, q
                else:
                    i, j = q, p
                yi = Y[i]
                yj = Y[j]
                c = np.dot(yi, yj)
                a = np.dot(yi, yi)
                bb = np.dot(yj, yj)
                if abs(c) <= tol * math.sqrt(a * bb):
                    continue
                rotated = True
                rho = math.exp(s[j] - s[i])
                eta = (rho * rho * bb - a) / (2.0 * c)
                sg = 1.0 if eta >= 0.0 else -1.0
                tau = sg / (abs(eta) + math.sqrt(rho * rho + eta * eta))
                t = tau * rho
                cs = 1.0 / math.sqrt(1.0 + t * t)
                r2 = tau * rho * rho
                ni = 0.0
                nj = 0.0
                for l in range(yi.size):
                    vi = yi[l]
                    vj = yj[l]
                    wi = cs * (vi - r2 * vj)
                    wj = cs * (tau * vi + vj)
                    yi[l] = wi
                    yj[l] = wj
                    ni += wi * wi
                    nj += wj * wj
                ni = math.sqrt(ni)
                nj = math.sqrt(nj)
                if ni > 0.0:
                    yi /= ni
                    s[i] += math.log(ni)
                else:
                    s[i] = -np.inf
                if nj > 0.0:
                    yj /= nj
                    s[j] += math.log(nj)
                else:
                    s[j] = -np.inf
        if not rotated:
            sweeps = sweep
            break
    out = np.sort(s)[::-1].copy()
    return out, sweeps


@njit(**JIT, parallel=True)
def _factor_and_accumulate(G, Lprev, Y, sigma, routines):
    """Factor the Gram matrix G in place (`_cholesky_sine`, whose value is returned) on one thread
    while another accumulates the previous step's factor, ``R <- Lprev^T R`` into (Y, sigma):
    the two are independent, and neither splits well over threads."""
    smin = np.zeros(1)
    for c in prange(2):
        if c == 0:
            smin[0] = _cholesky_sine(routines, G)
        else:
            accumulate_triangular(Lprev, Y, sigma, routines, 1)
    return smin[0]


@njit(**JIT)
def spectrum_push(Qt, At, Y, sigma, Lprev, kappa_max, routines):
    """One step of the QR-accumulated product: ``Z = A Q = Q' R'``, ``R <- R' R``, with each
    step's factor R' accumulated during the next step (`_factor_and_accumulate`).

    Parameters
    ----------
    Qt : float64 array (k, n_prev), orthonormal rows; At : float64 array (n_prev, n_next).
    Y, sigma : the accumulated factor R = diag(exp(sigma)) Y, (k, r) and (k,).
    Lprev : float64 array (k, k), the previous step's factor (lower triangular, R' transposed),
        not yet in (Y, sigma); shape (0, 0) for none. Must be empty when the product narrows
        (k > n_next).
    kappa_max : float; routines : int64 array (`rnnsim.kernels.fortran.routine_addresses()`).

    Returns
    -------
    Qn : the new Qt (k', n_next), k' = min(k, n_next); Y, sigma : with Lprev accumulated (rows
    k'); Lt : this step's factor, for the next push or `accumulate_triangular` (shape (0, 0) when
    it is already accumulated: a narrowing step); method : the QR method used.
    """
    chunks = column_chunks(Qt.shape[0], At.shape[1])
    Zt = product(Qt, At, routines, chunks)
    k = Zt.shape[0]
    if k <= Zt.shape[1]:
        G = gram_lower(Zt, routines, chunks)
        if Lprev.shape[0] > 0 and chunks > 1:
            smin = _factor_and_accumulate(G, Lprev, Y, sigma, routines)
        else:
            if Lprev.shape[0] > 0:
                accumulate_triangular(Lprev, Y, sigma, routines, chunks)
            smin = _cholesky_sine(routines, G)
        Qn, Lt, method = _orthonormalise_factored(Zt, G, smin, kappa_max, routines, chunks)
        return Qn, Y, sigma, Lt, method
    # the product narrows (MLP layer narrower than the rank so far): Householder on the wide Z
    Q, R = np.linalg.qr(np.ascontiguousarray(Zt.T))  # Z (n_next, k) = Q (n_next, n_next) R
    kn = Zt.shape[1]
    Lt = np.zeros((k, k))  # embed R^T (k, kn) as the first kn columns of a lower "triangle"
    Rt = np.ascontiguousarray(R.T)
    for i in range(k):
        for j in range(kn):
            Lt[i, j] = Rt[i, j]
    accumulate_triangular(Lt, Y, sigma, routines, chunks)  # rows >= kn become zero (sigma = -inf)
    return np.ascontiguousarray(Q.T), Y[:kn].copy(), sigma[:kn].copy(), np.empty((0, 0)), 3


@njit(**JIT)
def _spectrum_step(Qt, At, Y, sigma, Lpend, want, k_prev, k, Ys, sigmas, routines):
    """One step of `rnn_spectrum` and `mlp_spectrum`: `spectrum_push` with the pending factor
    Lpend of step ``k_prev``, saving (`_save`) every product the step completes: that of k_prev,
    and that of ``k`` itself when the product narrows (then accumulated at once, after the
    pending factor). Returns (Qt, Y, sigma, Lpend)."""
    pending = Lpend.shape[0] > 0
    if pending and Qt.shape[0] > At.shape[1]:
        _spectrum_finish(Y, sigma, Lpend, want, k_prev, Ys, sigmas, routines)
        Lpend = np.empty((0, 0))
        pending = False
    Qt, Y, sigma, Lpend, _ = spectrum_push(Qt, At, Y, sigma, Lpend, 1e3, routines)
    if pending:
        _save(want, k_prev, Y, sigma, Ys, sigmas)
    if Lpend.shape[0] == 0:
        _save(want, k, Y, sigma, Ys, sigmas)
    return Qt, Y, sigma, Lpend


@njit(**JIT)
def _spectrum_finish(Y, sigma, Lpend, want, k_last, Ys, sigmas, routines):
    """Accumulate the pending factor (if any) and save the product of its step ``k_last``: at
    the end, and before a step that narrows the product."""
    if Lpend.shape[0] > 0:
        accumulate_triangular(Lpend, Y, sigma, routines, column_chunks(Lpend.shape[0], Y.shape[1]))
        _save(want, k_last, Y, sigma, Ys, sigmas)


@njit(**JIT)
def _save(want, k, Y, sigma, Ys, sigmas):
    """Copy (Y, sigma) into slot want[k] of (Ys, sigmas) when step k is wanted (want[k] >= 0)."""
    if want[k] >= 0:
        r = Y.shape[0]
        Ys[want[k], :r] = Y
        sigmas[want[k], :r] = sigma


@njit(**JIT)
def rnn_spectrum(W, H, code, backward, sample, save_steps, routines):
    """QR-accumulated factors of dh_T/dh_k (backward) or dh_t/dh_0 (forward) at chosen steps.

    Parameters
    ----------
    W : float64 array (n, n); H : float64 array (T+1, B, n); code : int; backward : bool.
    sample : int, which sample of the batch.
    save_steps : int64 array, steps whose factors to return (any order; backward: k, forward: t).
    routines : int64 array, `rnnsim.kernels.fortran.routine_addresses()`.

    Returns
    -------
    Ys : float64 array (len(save_steps), n, n), unit-row factors Y; sigmas : (len, n) log scales.
        The singular values of the product at save_steps[i] are those of diag(exp(sigma)) Y.
    """
    T = H.shape[0] - 1
    n = W.shape[0]
    ns = save_steps.size
    Ys = np.zeros((ns, n, n))
    sigmas = np.zeros((ns, n))
    want = np.full(T + 1, -1, dtype=np.int64)
    for i in range(ns):
        want[save_steps[i]] = i
    Qt = np.eye(n)
    Y = np.eye(n)
    sigma = np.zeros(n)
    Lpend = np.empty((0, 0))  # the last step's factor, accumulated during the next step
    k_prev = T if backward else 0
    _save(want, k_prev, Y, sigma, Ys, sigmas)
    At = np.empty((n, n))
    h = np.empty(n)
    for s in range(1, T + 1):
        t = T - s + 1 if backward else s
        k = t - 1 if backward else t
        h[:] = H[t, sample]
        step_factor(W, h, code, backward, At)
        Qt, Y, sigma, Lpend = _spectrum_step(
            Qt, At, Y, sigma, Lpend, want, k_prev, k, Ys, sigmas, routines
        )
        k_prev = k
    _spectrum_finish(Y, sigma, Lpend, want, k_prev, Ys, sigmas, routines)
    return Ys, sigmas


# ---------------------------------------------------------------------------------------------
# Lyapunov exponents (Benettin QR)
# ---------------------------------------------------------------------------------------------


@njit(**JIT)
def _factor_gram(parts, routines):
    """Sum the Gram matrix parts (chunks, k, k) into parts[0] and factor it there
    (`_cholesky_sine`, whose sine is returned)."""
    return _cholesky_sine(routines, _sum_lower(parts))


@njit(**JIT, parallel=True)
def _factor_and_product(parts, routines, factor, Zt, Wt, Znew, chunks, sine):
    """The first half of a parallel Benettin step: thread 0 factors the Gram matrix of the
    previous step (when ``factor``: `_factor_gram`, its sine into sine[0]) and multiplies fewer
    columns of ``Znew = Zt Wt`` to make up for it, the other threads multiply the rest.

    The product does not need the factor (it is applied afterwards, `_finish_columns`), so the
    factorisation, which does not split over threads, overlaps with it.
    """
    n = Znew.shape[1]
    k = Zt.shape[0]
    extra = min(n, 5 * k * k // (12 * n)) if factor else 0  # the factorisation in product columns
    for c in prange(chunks):
        if c == 0 and factor:
            sine[0] = _factor_gram(parts, routines)
        _product_share(Zt, Wt, Znew, routines, c, chunks, extra)


@njit(**JIT)
def _finish_columns(Znew, L, pending, d, G, gram, routines, c0, c1):
    """Columns c0:c1 of the second half of a Benettin step: ``Znew <- L^{-1} Znew diag(d)``
    (``L^{-1}`` only when ``pending``) and, when ``gram``, the lower triangle of their Gram matrix
    into G (k, k).

    Applying the previous step's triangular factor after the product rather than forming the
    orthonormal basis first gives the same basis (``L^{-1}`` acts on rows, ``Wt diag(d)`` on
    columns) and keeps every operation within one block of columns.
    """
    block = Znew[:, c0:c1]
    if pending:
        trsm_lower_left(routines, L, block)
    for r in range(Znew.shape[0]):
        for i in range(c0, c1):
            Znew[r, i] *= d[i]
    if gram:
        syrk_lower(routines, block, G)


@njit(**JIT, parallel=True)
def _finish_blocks(Znew, L, pending, d, parts, gram, routines, chunks):
    """`_finish_columns` on ``chunks`` column blocks in parallel; Gram parts into parts[c]."""
    n = Znew.shape[1]
    for c in prange(chunks):
        _finish_columns(
            Znew, L, pending, d, parts[c], gram, routines, c * n // chunks, (c + 1) * n // chunks
        )


@njit(**JIT)
def lyapunov_qr(W, U, b, x, h0, code, transient, steps, Qt0, reorth_every, kappa_max, routines):
    """Lyapunov exponents of the RNN map along one trajectory by QR re-orthonormalisation.

    Parameters
    ----------
    W : float64 array (n, n); U : (n, d_in); b : (n,).
    x : float64 array (transient + steps, d_in), the driving input; with d_in = 0 (shape
        (T, 0)) the map is autonomous, h_t = phi(W h_{t-1} + b).
    h0 : float64 array (n,), initial state.
    code : int, activation code.
    transient : int, uncounted steps first (the state evolves, the basis is not yet used).
    steps : int, counted steps.
    Qt0 : float64 array (k, n), orthonormal rows, the initial basis (k exponents).
    reorth_every : int, re-orthonormalise every this many steps (and at the end).
    kappa_max : float, Cholesky-QR second-pass threshold (`orthonormalise`).
    routines : int64 array, `rnnsim.kernels.fortran.routine_addresses()`.

    Returns
    -------
    exponents : float64 array (k,), sum of ln|R_ii| / steps, in the basis order (unsorted).
    sum_logdet : float, sum over counted steps of ln|det J_t| (for the sum rule; -inf if some
        J_t is singular).
    n_householder : int, re-orthonormalisations that needed Householder.

    Notes
    -----
    Benettin et al. 1980; Engelken, Wolf & Abbott 2020 (REFERENCES.md section 6). The step
    Jacobian is J_t = diag(phi'(a_t)) W; the sum rule sum_i lambda_i = mean ln|det J_t|.
    """
    n = W.shape[0]
    k = Qt0.shape[0]
    d_in = U.shape[1]
    h = h0.copy()
    a = np.empty(n)
    Wt = np.ascontiguousarray(W.T)
    Zt = Qt0.copy()  # the basis is L^{-1} Zt: each Cholesky factor is applied in the next step
    Znew = np.empty((k, n))
    L = np.eye(k)
    chunks = column_chunks(k, n)
    parts = np.empty((chunks, k, k))
    sine = np.zeros(1)
    gram_ready = False  # whether parts hold the Gram matrix of Zt, still to be factored
    acc = np.zeros(k)
    sum_ld = 0.0
    nh = 0
    d = np.empty(n)
    since = 0
    for t in range(transient + steps + 1):
        if t < transient + steps:
            a[:] = np.dot(W, h)
            if d_in > 0:
                a += np.dot(U, x[t])
            for i in range(n):
                h[i] = phi(code, a[i] + b[i])
            if t < transient:
                continue
            for i in range(n):
                d[i] = dphi_from_h(code, h[i])
                sum_ld += math.log(abs(d[i])) if d[i] != 0.0 else -np.inf
        elif not gram_ready:
            break
        last = t == transient + steps  # only the last factorisation is left
        if chunks == 1 or last:
            if gram_ready:
                sine[0] = _factor_gram(parts, routines)
            if not last:
                _product_columns(Zt, Wt, Znew, routines, 0, n)
        else:
            _factor_and_product(parts, routines, gram_ready, Zt, Wt, Znew, chunks, sine)
        pending = False
        if gram_ready:
            if _one_pass(sine[0], kappa_max):
                L[:, :] = parts[0]  # parts are overwritten while L is applied
                for i in range(k):
                    acc[i] += math.log(L[i, i])
                pending = True
            else:  # CholQR2 from this factor, or Householder
                Qt, Lt, method = _orthonormalise_factored(
                    Zt, parts[0], sine[0], kappa_max, routines, chunks
                )
                if method == 3:
                    nh += 1
                for i in range(k):
                    acc[i] += math.log(Lt[i, i]) if Lt[i, i] > 0.0 else -np.inf
                if not last:
                    _product_columns(Qt, Wt, Znew, routines, 0, n)
        if last:
            break
        since += 1
        gram_ready = since == reorth_every or t == transient + steps - 1
        if chunks == 1:
            _finish_columns(Znew, L, pending, d, parts[0], gram_ready, routines, 0, n)
        else:
            _finish_blocks(Znew, L, pending, d, parts, gram_ready, routines, chunks)
        Zt, Znew = Znew, Zt
        if gram_ready:
            since = 0
    return acc / steps, sum_ld, nh


@njit(**JIT)
def mlp_spectrum(params, widths, d_out, Hbuf, B, code, backward, sample, save_layers, routines):
    """QR-accumulated factors of dh_L/dh_l (backward) or dh_l/dh_0 (forward) at chosen layers.

    Parameters as `mlp_jacobian_norms`, plus ``sample`` (int), ``save_layers`` (int64 array)
    and ``routines`` (`rnnsim.kernels.fortran.routine_addresses()`).

    Returns
    -------
    Ys : float64 array (len(save_layers), m, m) with m = n_L (backward) or n_0 (forward); rows
        beyond the product's rank at that layer are zero. sigmas : (len, m), -inf on those rows.
    """
    L = widths.size - 1
    w_off, _, _ = layer_offsets(widths, d_out)
    s_off, _ = state_offsets(widths, B)
    m = widths[L] if backward else widths[0]
    ns = save_layers.size
    Ys = np.zeros((ns, m, m))
    sigmas = np.full((ns, m), -np.inf)
    want = np.full(L + 1, -1, dtype=np.int64)
    for i in range(ns):
        want[save_layers[i]] = i
    Qt = np.eye(m)
    Y = np.eye(m)
    sigma = np.zeros(m)
    Lpend = np.empty((0, 0))  # the last layer's factor, accumulated during the next layer
    k_prev = L if backward else 0
    _save(want, k_prev, Y, sigma, Ys, sigmas)
    for s in range(1, L + 1):
        t = L - s + 1 if backward else s
        k = t - 1 if backward else t
        n_out = widths[t]
        n_in = widths[t - 1]
        Wl = params[w_off[t - 1] : w_off[t - 1] + n_out * n_in].reshape(n_out, n_in)
        h = Hbuf[s_off[t] + sample * n_out : s_off[t] + (sample + 1) * n_out]
        At = np.empty((n_out, n_in)) if backward else np.empty((n_in, n_out))
        step_factor(Wl, h, code, backward, At)
        Qt, Y, sigma, Lpend = _spectrum_step(
            Qt, At, Y, sigma, Lpend, want, k_prev, k, Ys, sigmas, routines
        )
        k_prev = k
    _spectrum_finish(Y, sigma, Lpend, want, k_prev, Ys, sigmas, routines)
    return Ys, sigmas
