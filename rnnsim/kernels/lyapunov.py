"""Lyapunov exponents of the RNN map by QR re-orthonormalisation (Benettin's method).

A basis of k tangent vectors rides along one trajectory; every step (or every ``reorth_every``
steps) it is re-orthonormalised by Cholesky QR (`rnnsim.kernels.linalg`) and the logs of the
diagonal of the triangular factor are summed. The kernel applies each step's Cholesky factor in
the next step, so that the factorisation, which does not split over threads, overlaps with the
next product (`_factor_and_product`), and the rest of the step splits over column blocks
(`_finish_blocks`). The public wrapper is `rnnsim.jacobians.lyapunov_spectrum`.
"""

import math

import numpy as np
from numba import njit, prange

from rnnsim.kernels.activations import dphi_from_h, phi
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.linalg import (
    cholesky_sine,
    column_chunks,
    one_pass,
    orthonormalise_factored,
    product_columns,
    product_share,
    sum_lower,
    syrk_lower,
    trsm_lower_left,
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
    routines : int64 array, `rnnsim.kernels.linalg.routine_addresses()`.

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
                product_columns(Zt, Wt, Znew, routines, 0, n)
        else:
            _factor_and_product(parts, routines, gram_ready, Zt, Wt, Znew, chunks, sine)
        pending = False
        if gram_ready:
            if one_pass(sine[0], kappa_max):
                L[:, :] = parts[0]  # parts are overwritten while L is applied
                for i in range(k):
                    acc[i] += math.log(L[i, i])
                pending = True
            else:  # CholQR2 from this factor, or Householder
                Qt, Lt, method = orthonormalise_factored(
                    Zt, parts[0], sine[0], kappa_max, routines, chunks
                )
                if method == 3:
                    nh += 1
                for i in range(k):
                    acc[i] += math.log(Lt[i, i]) if Lt[i, i] > 0.0 else -np.inf
                if not last:
                    product_columns(Qt, Wt, Znew, routines, 0, n)
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
        product_share(Zt, Wt, Znew, routines, c, chunks, extra)


@njit(**JIT)
def _factor_gram(parts, routines):
    """Sum the Gram matrix parts (chunks, k, k) into parts[0] and factor it there
    (`cholesky_sine`, whose sine is returned)."""
    return cholesky_sine(routines, sum_lower(parts))


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
