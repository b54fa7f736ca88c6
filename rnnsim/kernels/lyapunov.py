"""Lyapunov exponents of the RNN map by QR re-orthonormalisation (Benettin's method).

A basis of k tangent vectors rides along one trajectory; every step (or every ``reorth_every``
steps) it is re-orthonormalised by Cholesky QR (`rnnsim.kernels.linalg`) and the logs of the
diagonal of the triangular factor are summed. The kernel applies each step's Cholesky factor in
the next step, so that the factorisation, which does not split over threads, overlaps with the
next product (`_factor_and_product`), and the rest of the step splits over column blocks
(`_finish_blocks`). The public wrapper is `rnnsim.jacobians.lyapunov_spectrum`.
"""

import math
from collections import namedtuple

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

# The map and the schedule (namedtuples: Numba reads their fields like a struct).
RNNMap = namedtuple("RNNMap", ["W", "U", "b", "code"])
RNNMap.__doc__ = """The RNN map h_t = phi(W h_{t-1} + U x_t + b): W (n, n), U (n, d_in), b (n,)
float64 arrays and the activation code; with d_in = 0 it is autonomous, h_t = phi(W h_{t-1} + b)."""
Schedule = namedtuple("Schedule", ["transient", "steps", "reorth_every", "kappa_max"])
Schedule.__doc__ = """``transient`` uncounted steps first (the state evolves and the basis with
it, re-orthonormalised but not measured, so that it has turned towards the leading directions
when the count starts), then ``steps`` counted ones, re-orthonormalising every ``reorth_every``
steps (and at the end of the transient and of the run); ``kappa_max``, the Cholesky-QR
second-pass threshold (`rnnsim.kernels.linalg.orthonormalise`)."""
QRWork = namedtuple("QRWork", ["Wt", "L", "parts", "sine", "acc"])
QRWork.__doc__ = """What a Benettin step works on besides the basis: ``Wt`` (n, n), W transposed;
``L`` (k, k), the last Cholesky factor, still to be applied; ``parts`` (chunks, k, k), the Gram
matrix of the basis by column blocks (summed and factored in parts[0]); ``sine`` (1,), that
factorisation's smallest sine (`cholesky_sine`); ``acc`` (k,), the sums of ln R_ii."""


@njit(**JIT)
def lyapunov_qr(rnn_map, x, h0, Qt0, schedule, routines):
    """Lyapunov exponents of the RNN map along one trajectory by QR re-orthonormalisation.

    Parameters
    ----------
    rnn_map : `RNNMap`.
    x : float64 array (transient + steps, d_in), the driving input (shape (T, 0) for the
        autonomous map).
    h0 : float64 array (n,), initial state.
    Qt0 : float64 array (k, n), orthonormal rows, the initial basis (k exponents), carried
        through the transient.
    schedule : `Schedule`.
    routines : int64 array, `rnnsim.kernels.linalg.routine_addresses()`.

    Returns
    -------
    exponents : float64 array (k,), sum of ln|R_ii| over the counted steps / steps, in the basis
        order (unsorted).
    sum_logdet : float, sum over counted steps of ln|det J_t| (for the sum rule; -inf if some
        J_t is singular).
    n_householder : int, re-orthonormalisations that needed Householder.
    overflow : int, the first step t whose state h_t is not finite (the map overflowed float64,
        as an unbounded ReLU map at a large gain does), at which the kernel stopped, with NaN
        exponents and sum; -1 when every state is finite.

    Notes
    -----
    Benettin et al. 1980; Engelken, Wolf & Abbott 2020 (REFERENCES.md section 6). The step
    Jacobian is J_t = diag(phi'(a_t)) W; the sum rule sum_i lambda_i = mean ln|det J_t|. Each step
    advances the state (`_advance`), multiplies the basis by the step's Jacobian while the last
    Gram matrix is factored (`_multiply_and_factor`), takes the factor (`_take_factor`) and
    finishes the step (`_finish`: the factor's inverse, the derivatives, the next Gram matrix).
    """
    n = rnn_map.W.shape[0]
    k = Qt0.shape[0]
    chunks = column_chunks(k, n)
    work = QRWork(
        np.ascontiguousarray(rnn_map.W.T),
        np.eye(k),
        np.empty((chunks, k, k)),
        np.zeros(1),
        np.zeros(k),
    )
    h = h0.copy()
    a = np.empty(n)
    d = np.empty(n)
    Zt = Qt0.copy()  # the basis is L^{-1} Zt: each Cholesky factor is applied in the next step
    Znew = np.empty((k, n))
    end = schedule.transient + schedule.steps
    gram_ready = False  # whether parts hold the Gram matrix of Zt, still to be factored
    sum_ld = 0.0
    nh = 0
    since = 0
    for t in range(end + 1):
        if t < end:
            _advance(rnn_map, x, t, h, a)
            if not np.isfinite(h).all():  # the state overflowed: its Jacobians mean nothing
                return np.full(k, np.nan), np.nan, nh, t + 1
            ld = _derivatives(rnn_map.code, h, d, sum_ld)
            sum_ld = ld if t >= schedule.transient else sum_ld
        elif not gram_ready:
            break
        last = t == end  # only the last factorisation is left
        _multiply_and_factor(Zt, Znew, work, gram_ready, not last, routines)
        pending = False
        if gram_ready:  # the factor of the steps up to t - 1, counted when they are
            pending, householder = _take_factor(
                Zt, Znew, work, not last, schedule.kappa_max, t > schedule.transient, routines
            )
            nh += householder
        if last:
            break
        since += 1
        # the basis is re-orthonormalised at the end of the transient too, so that every
        # factor covers either transient steps only or counted steps only
        boundary = t == end - 1 or t == schedule.transient - 1
        gram_ready = since == schedule.reorth_every or boundary
        _finish(Znew, d, work, pending, gram_ready, routines)
        Zt, Znew = Znew, Zt
        if gram_ready:
            since = 0
    return work.acc / schedule.steps, sum_ld, nh, -1


@njit(**JIT)
def _advance(rnn_map, x, t, h, a):
    """One step of the map, in place: ``h <- phi(W h + U x[t] + b)`` (a (n,) is workspace)."""
    W, U, b, code = rnn_map
    a[:] = np.dot(W, h)
    if U.shape[1] > 0:
        a += np.dot(U, x[t])
    for i in range(h.size):
        h[i] = phi(code, a[i] + b[i])


@njit(**JIT)
def _derivatives(code, h, d, sum_ld):
    """``d = phi'`` at the state h (the step Jacobian is diag(d) W); returns ``sum_ld`` plus
    ln|det diag(d)|, added one term at a time (-inf when some d_i is 0)."""
    for i in range(h.size):
        d[i] = dphi_from_h(code, h[i])
        sum_ld += math.log(abs(d[i])) if d[i] != 0.0 else -np.inf
    return sum_ld


@njit(**JIT)
def _multiply_and_factor(Zt, Znew, work, factor, multiply, routines):
    """The first half of a Benettin step: ``Znew = Zt Wt`` (when ``multiply``) and, when
    ``factor``, the factorisation of the previous step's Gram matrix (`_factor_gram`, in
    work.parts[0], its sine into work.sine[0]); overlapped (`_factor_and_product`) when the
    product splits over column blocks."""
    chunks = work.parts.shape[0]
    if chunks == 1 or not multiply:
        if factor:
            work.sine[0] = _factor_gram(work.parts, routines)
        if multiply:
            product_columns(Zt, work.Wt, Znew, routines, 0, Znew.shape[1])
    else:
        _factor_and_product(work.parts, routines, factor, Zt, work.Wt, Znew, chunks, work.sine)


@njit(**JIT)
def _take_factor(Zt, Znew, work, multiply, kappa_max, count, routines):
    """Add the logs of the diagonal of the factored Gram matrix (work.parts[0]) to work.acc
    (only when ``count``: during the transient the basis is re-orthonormalised, not measured).

    When one Cholesky pass is accurate (`one_pass`) the factor is kept in work.L, to be applied
    in `_finish`; otherwise Zt is orthonormalised afresh from it (CholQR2, or Householder) and,
    when ``multiply``, Znew is formed again from that basis.

    Returns
    -------
    (whether work.L is pending, 1 when Householder was needed else 0).
    """
    k = Zt.shape[0]
    acc = work.acc
    if one_pass(work.sine[0], kappa_max):
        L = work.L
        L[:, :] = work.parts[0]  # parts are overwritten while L is applied
        if count:
            for i in range(k):
                acc[i] += math.log(L[i, i])
        return True, 0
    Qt, Lt, method = orthonormalise_factored(
        Zt, work.parts[0], work.sine[0], kappa_max, routines, work.parts.shape[0]
    )
    if count:
        for i in range(k):
            acc[i] += math.log(Lt[i, i]) if Lt[i, i] > 0.0 else -np.inf
    if multiply:
        product_columns(Qt, work.Wt, Znew, routines, 0, Znew.shape[1])
    return False, 1 if method == 3 else 0


@njit(**JIT)
def _finish(Znew, d, work, pending, gram, routines):
    """The second half of a Benettin step: ``Znew <- L^{-1} Znew diag(d)`` (``L^{-1}`` =
    work.L's, only when ``pending``) and, when ``gram``, its Gram matrix into work.parts, by
    column blocks (`_finish_columns`, `_finish_blocks`)."""
    chunks = work.parts.shape[0]
    if chunks == 1:
        _finish_columns(Znew, work.L, pending, d, work.parts[0], gram, routines, 0, Znew.shape[1])
    else:
        _finish_blocks(Znew, work.L, pending, d, work.parts, gram, routines, chunks)


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
