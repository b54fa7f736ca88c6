"""Every singular value of deep Jacobian products, by QR re-orthonormalisation.

The product of step factors is carried as ``Q R`` with ``R = diag(exp(sigma)) Y`` (unit-norm rows
``Y``, log row scales ``sigma``): each step forms ``Z = A Q = Q' R'`` by Cholesky QR and
accumulates ``R <- R' R`` (`rnnsim.kernels.linalg`). The factor of each step is accumulated
during the next step (`_factor_and_accumulate`), so that two pieces of work that do not split
over threads overlap. The singular values of a saved factor come from one-sided Jacobi in scaled
form (`scaled_jacobi_logsv`), so they may span far beyond float64.

Layers, as in stumpy: the kernels `rnn_spectrum` and `mlp_spectrum` walk the chain and save the
chosen steps; `spectrum_push` is one step; the public wrapper is
`rnnsim.jacobians.jacobian_spectrum`.
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from rnnsim.kernels.jit import JIT
from rnnsim.kernels.linalg import (
    accumulate_triangular,
    cholesky_sine,
    column_chunks,
    gram_lower,
    orthonormalise_factored,
    product,
    step_factor,
)
from rnnsim.kernels.mlp import layer_offsets, state_offsets

# One Cholesky pass errs by O(eps kappa^2) in every singular value of its factor (the Gram
# matrix's rounding), two passes (CholQR2) by O(eps) backward, as Householder does: a second pass
# unless the step is this well conditioned (error then below ~1e-13).
KAPPA_ONE_PASS = 10.0

# The records a chain passes along (namedtuples: Numba reads their fields like a struct).
QRProduct = namedtuple("QRProduct", ["Qt", "Y", "sigma", "Lpend"])
QRProduct.__doc__ = """A product of step factors in QR form, with R = diag(exp(sigma)) Y: ``Qt``
(k, n), orthonormal rows; ``Y`` (k, r), unit rows, and ``sigma`` (k,), log scales; ``Lpend``
(k, k), the last step's factor, accumulated during the next step ((0, 0): none)."""
Saved = namedtuple("Saved", ["want", "Ys", "sigmas"])
Saved.__doc__ = """Where the chosen steps go: ``want`` (S+1,) int64, the slot of each step (-1: not
saved); ``Ys`` (slots, m, m) and ``sigmas`` (slots, m), the outputs, written in place."""


@njit(**JIT)
def rnn_spectrum(W, H, code, backward, sample, save_steps, routines):
    """QR-accumulated factors of dh_T/dh_k (backward) or dh_t/dh_0 (forward) at chosen steps.

    Parameters
    ----------
    W : float64 array (n, n); H : float64 array (T+1, B, n); code : int; backward : bool.
    sample : int, which sample of the batch.
    save_steps : int64 array, steps whose factors to return (any order; backward: k, forward: t).
    routines : int64 array, `rnnsim.kernels.linalg.routine_addresses()`.

    Returns
    -------
    Ys : float64 array (len(save_steps), n, n), unit-row factors Y; sigmas : (len, n) log scales.
        The singular values of the product at save_steps[i] are those of diag(exp(sigma)) Y.
    """
    T = H.shape[0] - 1
    n = W.shape[0]
    k_prev = T if backward else 0
    saved, state = _start(save_steps, T, n, 0.0, k_prev)
    At = np.empty((n, n))
    h = np.empty(n)
    for s in range(1, T + 1):
        t = T - s + 1 if backward else s
        k = t - 1 if backward else t
        h[:] = H[t, sample]
        step_factor(W, h, code, backward, At)
        state = _spectrum_step(state, At, k_prev, k, saved, routines)
        k_prev = k
    _spectrum_finish(state, k_prev, saved, routines)
    return saved.Ys, saved.sigmas


# The arguments are the MLP's arrays as `rnnsim.models.JacobianChain.arrays` hands them over
# (params, widths, d_out, Hbuf, B), then the same five as `rnn_spectrum`.
@njit(**JIT)
def mlp_spectrum(params, widths, d_out, Hbuf, B, code, backward, sample, save_layers, routines):
    """QR-accumulated factors of dh_L/dh_l (backward) or dh_l/dh_0 (forward) at chosen layers.

    Parameters as `mlp_jacobian_norms`, plus ``sample`` (int), ``save_layers`` (int64 array)
    and ``routines`` (`rnnsim.kernels.linalg.routine_addresses()`).

    Returns
    -------
    Ys : float64 array (len(save_layers), m, m) with m = n_L (backward) or n_0 (forward); rows
        beyond the product's rank at that layer are zero. sigmas : (len, m), -inf on those rows.
    """
    L = widths.size - 1
    w_off, _, _ = layer_offsets(widths, d_out)
    s_off, _ = state_offsets(widths, B)
    m = widths[L] if backward else widths[0]
    k_prev = L if backward else 0
    saved, state = _start(save_layers, L, m, -np.inf, k_prev)
    for s in range(1, L + 1):
        t = L - s + 1 if backward else s
        k = t - 1 if backward else t
        n_out = widths[t]
        n_in = widths[t - 1]
        Wl = params[w_off[t - 1] : w_off[t - 1] + n_out * n_in].reshape(n_out, n_in)
        h = Hbuf[s_off[t] + sample * n_out : s_off[t] + (sample + 1) * n_out]
        At = np.empty((n_out, n_in)) if backward else np.empty((n_in, n_out))
        step_factor(Wl, h, code, backward, At)
        state = _spectrum_step(state, At, k_prev, k, saved, routines)
        k_prev = k
    _spectrum_finish(state, k_prev, saved, routines)
    return saved.Ys, saved.sigmas


@njit(**JIT)
def _start(save, S, m, unset, k0):
    """The `Saved` slots for steps ``save`` of a chain of S steps on m rows (sigmas ``unset``
    until written), and the `QRProduct` of the identity at step ``k0``, saved at once."""
    ns = save.size
    want = np.full(S + 1, -1, dtype=np.int64)
    for i in range(ns):
        want[save[i]] = i
    saved = Saved(want, np.zeros((ns, m, m)), np.full((ns, m), unset))
    # Lpend: the last step's factor, accumulated during the next step
    state = QRProduct(np.eye(m), np.eye(m), np.zeros(m), np.empty((0, 0)))
    _save(saved, k0, state.Y, state.sigma)
    return saved, state


@njit(**JIT)
def _spectrum_step(state, At, k_prev, k, saved, routines):
    """One step of `rnn_spectrum` and `mlp_spectrum`: `spectrum_push` with the pending factor
    of step ``k_prev``, saving (`_save`) every product the step completes: that of k_prev,
    and that of ``k`` itself when the product narrows (then accumulated at once, after the
    pending factor). Returns the new `QRProduct`."""
    Qt, Y, sigma, Lpend = state
    pending = Lpend.shape[0] > 0
    if pending and Qt.shape[0] > At.shape[1]:
        _spectrum_finish(state, k_prev, saved, routines)
        Lpend = np.empty((0, 0))
        pending = False
    Qt, Y, sigma, Lpend, _ = spectrum_push(Qt, At, Y, sigma, Lpend, KAPPA_ONE_PASS, routines)
    if pending:
        _save(saved, k_prev, Y, sigma)
    if Lpend.shape[0] == 0:
        _save(saved, k, Y, sigma)
    return QRProduct(Qt, Y, sigma, Lpend)


@njit(**JIT)
def _spectrum_finish(state, k_last, saved, routines):
    """Accumulate the pending factor of ``state`` (if any) and save the product of its step
    ``k_last``: at the end, and before a step that narrows the product."""
    Lpend, Y, sigma = state.Lpend, state.Y, state.sigma
    if Lpend.shape[0] > 0:
        accumulate_triangular(Lpend, Y, sigma, routines, column_chunks(Lpend.shape[0], Y.shape[1]))
        _save(saved, k_last, Y, sigma)


@njit(**JIT)
def _save(saved, k, Y, sigma):
    """Copy (Y, sigma) into slot saved.want[k] when step k is wanted (saved.want[k] >= 0)."""
    slot = saved.want[k]
    if slot >= 0:
        r = Y.shape[0]
        saved.Ys[slot, :r] = Y
        saved.sigmas[slot, :r] = sigma


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
    kappa_max : float; routines : int64 array (`rnnsim.kernels.linalg.routine_addresses()`).

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
            smin = cholesky_sine(routines, G)
        Qn, Lt, method = orthonormalise_factored(Zt, G, smin, kappa_max, routines, chunks)
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


@njit(**JIT, parallel=True)
def _factor_and_accumulate(G, Lprev, Y, sigma, routines):
    """Factor the Gram matrix G in place (`cholesky_sine`, whose value is returned) on one thread
    while another accumulates the previous step's factor, ``R <- Lprev^T R`` into (Y, sigma):
    the two are independent, and neither splits well over threads."""
    smin = np.zeros(1)
    for c in prange(2):
        if c == 0:
            smin[0] = cholesky_sine(routines, G)
        else:
            accumulate_triangular(Lprev, Y, sigma, routines, 1)
    return smin[0]


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
