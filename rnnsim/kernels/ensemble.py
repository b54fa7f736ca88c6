"""Ensemble kernels: E vanilla RNNs of one shape, their parameters stacked on a first axis.

Arrays: W (E, n, n), U (E, n, d_in), b (E, n), V (E, d_out, n), c (E, d_out). Each member's data
carries a leading member axis of length E, or of length 1 when every member gets the same data:
x (1 or E, T, B, d_in), h0 (1 or E, B, n), targets (1 or E, ...). `member_index` picks the slot.

Two ways to run the members, chosen per call:

- Many small members (`use_lanes`: at least LANES of them, n, d_in, d_out <= LANES_MAX_SIDE,
  (T+1) B n <= LANES_MAX_STATES) run side by side, one member per SIMD lane (`lanes_loss_grad`):
  blocks of LANES members split over threads, every product a loop over the lanes, so that one
  vector instruction serves several members and small products cost no call. The sums run in another order than the single
  model's: a member agrees with the single RNN to rounding.
- Otherwise each member runs the single-model kernels of `rnnsim.kernels.rnn` unchanged, and
  gives the numbers of the RNN made of its parameters bit for bit. With at least one member per
  core and members small enough that those kernels run them in one thread, the members are split
  over threads (``prange``); otherwise they run one after another, each splitting its batch over
  threads as a single model does.

Members never share a buffer or a lane, so a NaN or an overflow in one cannot reach another.
"""

import numpy as np
from numba import njit, prange

from rnnsim.kernels.activations import activate, times_dphi
from rnnsim.kernels.blas import PARALLEL_MIN_FLOPS, THREADS
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.losses import mse, xent
from rnnsim.kernels.rnn import batch_chunks, rnn_forward, rnn_loss_grad


@njit(**JIT)
def member_index(data, e):
    """The slot of member ``e`` in ``data``, whose first axis is E (one per member) or 1 (shared).

    As an int64 (prange's index is unsigned, and Numba would unify it with the 0 as a float)."""
    return np.int64(e) if data.shape[0] > 1 else np.int64(0)


@njit(**JIT)
def split_members(E, T, B, n, d_in, d_out):
    """True when the members should be split over threads: at least one member per core, and
    each member's pass small enough that `rnnsim.kernels.rnn` runs it in one thread (one batch
    chunk, weight gradients by one product; see `rnn.batch_chunks` and `blas.at_b`), so that
    no parallel region is ever started inside another and the arithmetic stays the single
    model's."""
    one_chunk = batch_chunks(B, n) == 1
    one_product = T * B * n * max(n, d_in, d_out) < 2 * PARALLEL_MIN_FLOPS
    return THREADS > 1 and E >= THREADS and one_chunk and one_product


@njit(**JIT)
def member_forward(e, W, U, b, V, c, x, h0, code, H, Y):
    """`rnn_forward` of member ``e`` into ``H[e]`` (T+1, B, n) and ``Y[e]`` (T, B, d_out)."""
    He, Ye = rnn_forward(
        W[e], U[e], b[e], V[e], c[e], x[member_index(x, e)], h0[member_index(h0, e)], code
    )
    H[e] = He
    Y[e] = Ye


@njit(**JIT, parallel=True)
def forward_members(W, U, b, V, c, x, h0, code, H, Y):
    """`member_forward` of every member, members split over threads."""
    for e in prange(W.shape[0]):
        member_forward(e, W, U, b, V, c, x, h0, code, H, Y)


@njit(**JIT)
def ensemble_forward(W, U, b, V, c, x, h0, code):
    """Run every member over its batch.

    Parameters
    ----------
    W, U, b, V, c : float64 arrays (E, n, n), (E, n, d_in), (E, n), (E, d_out, n), (E, d_out)
    x : float64 array (1 or E, T, B, d_in), shared by every member or one per member.
    h0 : float64 array (1 or E, B, n), initial states.
    code : int, activation code (`rnnsim.kernels.activations`).

    Returns
    -------
    H : float64 array (E, T+1, B, n), states with ``H[e, 0]`` = member e's h0.
    Y : float64 array (E, T, B, d_out), outputs.
    """
    E, n, d_in = U.shape
    _, T, B, _ = x.shape
    d_out = V.shape[1]
    H = np.empty((E, T + 1, B, n))
    Y = np.empty((E, T, B, d_out))
    if split_members(E, T, B, n, d_in, d_out):
        forward_members(W, U, b, V, c, x, h0, code, H, Y)
    else:
        for e in range(E):
            member_forward(e, W, U, b, V, c, x, h0, code, H, Y)
    return H, Y


@njit(**JIT)
def member_loss_grad(e, W, U, b, V, c, x, h0, code, target, labels, loss_code, out):
    """`rnn_loss_grad` of member ``e``; its loss and gradients go to slot e of the arrays of
    ``out`` = (losses (E,), gW, gU, gb, gV, gc stacked like the parameters)."""
    loss, gW, gU, gb, gV, gc, _, _ = rnn_loss_grad(
        W[e], U[e], b[e], V[e], c[e], x[member_index(x, e)], h0[member_index(h0, e)], code,
        target[member_index(target, e)], labels[member_index(labels, e)], loss_code,
    )  # fmt: skip
    losses, oW, oU, ob, oV, oc = out
    losses[e] = loss
    oW[e] = gW
    oU[e] = gU
    ob[e] = gb
    oV[e] = gV
    oc[e] = gc


@njit(**JIT, parallel=True)
def loss_grad_members(W, U, b, V, c, x, h0, code, target, labels, loss_code, out):
    """`member_loss_grad` of every member, members split over threads."""
    for e in prange(W.shape[0]):
        member_loss_grad(e, W, U, b, V, c, x, h0, code, target, labels, loss_code, out)


@njit(**JIT)
def ensemble_loss_grad(W, U, b, V, c, x, h0, code, target, labels, loss_code):
    """Every member's loss and exact gradient (backpropagation through time).

    Parameters
    ----------
    W, U, b, V, c, x, h0, code : as for `ensemble_forward`.
    target : float64 array (1 or E, T or 1, B, d_out), float targets per member (or shared), with
        a time axis of length 1 for the ``*_last`` losses.
    labels : int64 array (1 or E, T or 1, B), integer targets likewise.
    loss_code : int, 0 mse_last, 1 mse_all, 2 xent_last, 3 xent_all (the unused one of
        ``target`` and ``labels`` may be any array of the right dtype and rank).

    Returns
    -------
    losses : float64 array (E,)
    gW, gU, gb, gV, gc : float64 arrays shaped like W, U, b, V, c: member e's dL_e/dtheta_e.

    Notes
    -----
    Member e's numbers are those of `rnnsim.kernels.rnn.rnn_loss_grad` on its parameters: bit for
    bit (the same kernel runs it), or to rounding when the members run in lanes (`use_lanes`).
    """
    E, n, d_in = U.shape
    _, T, B, _ = x.shape
    d_out = V.shape[1]
    if use_lanes(E, T, B, n, d_in, d_out):
        return lanes_loss_grad(W, U, b, V, c, x, h0, code, target, labels, loss_code)
    out = (
        np.empty(E), np.empty((E, n, n)), np.empty((E, n, d_in)), np.empty((E, n)),
        np.empty((E, d_out, n)), np.empty((E, d_out)),
    )  # fmt: skip
    if split_members(E, T, B, n, d_in, d_out):
        loss_grad_members(W, U, b, V, c, x, h0, code, target, labels, loss_code, out)
    else:
        for e in range(E):
            member_loss_grad(e, W, U, b, V, c, x, h0, code, target, labels, loss_code, out)
    return out


# ---------------------------------------------------------------------------------------------
# Small members side by side: one member per SIMD lane
# ---------------------------------------------------------------------------------------------

# Members per block. Every array of a block ends in a lane axis of this length and every inner
# loop runs along it, so that a multiply-add is one vector instruction over several members and
# no sum is horizontal. The loops must be long for LLVM's loop vectorizer to take them (shorter
# ones, or a length known at compile time, come out scalar: Numba leaves SLP vectorization off),
# and a block's states (T+1) B n LANES must not leave the caches: 32 serves both.
LANES = 32

# Members up to this size (n, d_in, d_out) run in lanes: beyond it one member's products are
# long enough for the single-model kernels.
LANES_MAX_SIDE = 32

# ... and with at most this many state values (T+1) B n each: a block keeps LANES members'
# states for the backward pass (16 MB at this bound), where the single-model kernels keep one.
LANES_MAX_STATES = 1 << 16


@njit(**JIT)
def use_lanes(E, T, B, n, d_in, d_out):
    """True when the members run in lanes (`lanes_loss_grad`): at least one full block of
    LANES members, each small enough for the lanes to pay and to hold a block's states."""
    small = max(n, d_in, d_out) <= LANES_MAX_SIDE and (T + 1) * B * n <= LANES_MAX_STATES
    return E >= LANES and small


@njit(**JIT)
def to_lanes(P, L):
    """(E, r, s) -> (blocks, r, s, L): member e at block e // L, lane e % L. Lanes past the last
    member repeat it (finite numbers; their results are dropped)."""
    E, r, s = P.shape
    out = np.empty(((E + L - 1) // L, r, s, L))
    for k in range(out.shape[0]):
        for l in range(L):
            out[k, :, :, l] = P[min(k * L + l, E - 1)]
    return out


@njit(**JIT)
def from_lanes(P, E):
    """The inverse of `to_lanes`: (blocks, r, s, L) -> (E, r, s), padding lanes dropped."""
    L = P.shape[3]
    out = np.empty((E, P.shape[1], P.shape[2]))
    for e in range(E):
        out[e] = P[e // L, :, :, e % L]
    return out


@njit(**JIT)
def gather_lanes(data, e0, E, out):
    """``out[..., l]`` = the data of member e0 + l (`member_index`; past the last member, the
    last member's), for data (1 or E, ...) and out (..., L) of the same per-member size."""
    L = out.shape[-1]
    flat = out.reshape(-1, L)
    for l in range(L):
        src = data[member_index(data, min(e0 + l, E - 1))].reshape(-1)
        for i in range(src.size):
            flat[i, l] = src[i]


@njit(**JIT, fastmath={"contract"})
def lanes_matvec(M, h, out):
    """``out[b, i] += sum_j h[b, j] M[j, i]`` in every lane, for every sample b: M (k, m, L),
    h (B, k, L), out (B, m, L).

    Four terms at a time (``out`` loaded and stored once per four products), and each four rows
    of M used for every sample while they are in the L1 cache. Views are taken only of M, once per
    four rows (a view costs a reference count, more than a row of arithmetic). Multiply-adds may
    be fused (FMA)."""
    k, m, L = M.shape
    B = h.shape[0]
    k4 = k - k % 4
    for j in range(0, k4, 4):
        M0, M1, M2, M3 = M[j], M[j + 1], M[j + 2], M[j + 3]
        for bb in range(B):
            for i in range(m):
                for l in range(L):
                    out[bb, i, l] += (h[bb, j, l] * M0[i, l] + h[bb, j + 1, l] * M1[i, l]) + (
                        h[bb, j + 2, l] * M2[i, l] + h[bb, j + 3, l] * M3[i, l]
                    )
    for j in range(k4, k):
        Mj = M[j]
        for bb in range(B):
            for i in range(m):
                for l in range(L):
                    out[bb, i, l] += h[bb, j, l] * Mj[i, l]


@njit(**JIT, fastmath={"contract"})
def lanes_outer(G, u, v):
    """``G[i, j] += sum_b u[b, i] v[b, j]`` in every lane: G (m, k, L), u (B, m, L), v (B, k, L);
    four samples at a time (G loaded and stored once per four)."""
    m, k, L = G.shape
    B = u.shape[0]
    B4 = B - B % 4
    for i in range(m):
        Gi = G[i]
        for b in range(0, B4, 4):
            for j in range(k):
                for l in range(L):
                    Gi[j, l] += (u[b, i, l] * v[b, j, l] + u[b + 1, i, l] * v[b + 1, j, l]) + (
                        u[b + 2, i, l] * v[b + 2, j, l] + u[b + 3, i, l] * v[b + 3, j, l]
                    )
        for b in range(B4, B):
            for j in range(k):
                for l in range(L):
                    Gi[j, l] += u[b, i, l] * v[b, j, l]


@njit(**JIT)
def lanes_forward(P, xl, H, Y, code):
    """One block's forward pass: ``h_t = phi(W h_{t-1} + U x_t + b)``, ``y_t = V h_t + c``.

    P = (W, WT, UT, b, V, VT, c) of the block, lane arrays (`to_lanes`) with WT[j, i] = W[i, j]
    and likewise UT, VT; b (n, L), c (d_out, L). xl (T, B, d_in, L) the inputs; H (T+1, B, n, L)
    with H[0] set, written for t >= 1; Y (T, B, d_out, L) written. Every sample of a step at once.
    """
    _, WT, UT, b, _, VT, c = P
    T, B = xl.shape[:2]
    A = np.empty(H.shape[1:])
    n, L = b.shape
    d_out = c.shape[0]
    for t in range(1, T + 1):
        for bb in range(B):
            for i in range(n):
                for l in range(L):
                    A[bb, i, l] = b[i, l]
            for o in range(d_out):
                for l in range(L):
                    Y[t - 1, bb, o, l] = c[o, l]
        lanes_matvec(UT, xl[t - 1], A)
        lanes_matvec(WT, H[t - 1], A)
        activate(code, A.reshape(-1), H[t].reshape(-1))
        lanes_matvec(VT, H[t], Y[t - 1])


@njit(**JIT)
def lanes_losses(Y, e0, E, target, labels, loss_code, losses, dY):
    """Each lane's loss (`rnnsim.kernels.losses`, on a copy of its outputs) into ``losses[e0 + l]``
    and its dL/dY into ``dY[..., l]`` (T, B, d_out, L); padding lanes get dY = 0."""
    T, B, d_out, L = Y.shape
    Ym = np.empty((T, B, d_out))
    dYm = np.empty((T, B, d_out))
    dY[:] = 0.0
    for l in range(min(L, E - e0)):
        e = e0 + l
        Ym[:] = Y[:, :, :, l]
        dYm[:] = 0.0
        if loss_code < 2:
            losses[e] = mse(Ym, target[member_index(target, e)], loss_code == 0, dYm)
        else:
            losses[e] = xent(Ym, labels[member_index(labels, e)], loss_code == 2, dYm)
        dY[:, :, :, l] = dYm


@njit(**JIT)
def lanes_backward(P, xl, H, dY, code, grads):
    """One block's backpropagation through time, accumulating ``grads`` = (gW (n, n, L),
    gU (n, d_in, L), gb (n, L), gV (d_out, n, L), gc (d_out, L)), zero on entry.

    P, xl and H as in `lanes_forward`; dY (T, B, d_out, L) = dL/dy_t. Per step, every sample at
    once: ``g = V^T dy_t + W^T da_{t+1}``, ``da_t = g * phi'(a_t)``; the weight gradients take the
    outer products of ``da_t`` with h_{t-1} and x_t, and of dy_t with h_t, summed over samples.
    """
    W, _, _, _, V, _, _ = P
    gW, gU, gb, gV, gc = grads
    T, B = xl.shape[:2]
    n, L = gb.shape
    d_out = gc.shape[0]
    future = np.zeros(H.shape[1:])  # W^T da_{t+1}, (B, n, L)
    da = np.empty(H.shape[1:])
    for t in range(T, 0, -1):
        lanes_matvec(V, dY[t - 1], future)  # future is now g, dL/dh_t
        times_dphi(code, future.reshape(-1), H[t].reshape(-1), da.reshape(-1))
        for bb in range(B):
            for i in range(n):
                for l in range(L):
                    gb[i, l] += da[bb, i, l]
            for o in range(d_out):
                for l in range(L):
                    gc[o, l] += dY[t - 1, bb, o, l]
        lanes_outer(gW, da, H[t - 1])
        lanes_outer(gU, da, xl[t - 1])
        lanes_outer(gV, dY[t - 1], H[t])
        future[:] = 0.0
        lanes_matvec(W, da, future)


@njit(**JIT)
def lanes_block(k, P, x, h0, code, target, labels, loss_code, losses, G):
    """Loss and gradients of block k, members k L .. k L + L - 1: ``P`` holds every block's lane
    arrays (see `lanes_forward`), the losses go to ``losses``, the gradients to slot k of the
    lane arrays ``G`` = (gW, gU, gb, gV, gc), zero on entry."""
    Pk = (P[0][k], P[1][k], P[2][k], P[3][k], P[4][k], P[5][k], P[6][k])
    E = losses.size
    _, T, B, d_in = x.shape
    n, L = Pk[3].shape
    d_out = Pk[6].shape[0]
    e0 = k * L
    xl = np.empty((T, B, d_in, L))
    gather_lanes(x, e0, E, xl)
    H = np.empty((T + 1, B, n, L))
    gather_lanes(h0, e0, E, H[0])
    Y = np.empty((T, B, d_out, L))
    lanes_forward(Pk, xl, H, Y, code)
    dY = np.empty_like(Y)
    lanes_losses(Y, e0, E, target, labels, loss_code, losses, dY)
    lanes_backward(Pk, xl, H, dY, code, (G[0][k], G[1][k], G[2][k], G[3][k], G[4][k]))


@njit(**JIT, parallel=True)
def lanes_blocks(P, x, h0, code, target, labels, loss_code, losses, G):
    """`lanes_block` of every block, blocks split over threads."""
    for k in prange(P[0].shape[0]):
        lanes_block(k, P, x, h0, code, target, labels, loss_code, losses, G)


@njit(**JIT)
def lanes_loss_grad(W, U, b, V, c, x, h0, code, target, labels, loss_code):
    """`ensemble_loss_grad` with the members side by side in lanes (same arguments and results).

    Notes
    -----
    The same mathematics as `rnnsim.kernels.rnn.rnn_loss_grad`, member by member, with the sums
    taken in another order (four terms at a time, weight gradients step by step backwards):
    members agree with the single model to rounding, not bit for bit. Lanes never mix, so a NaN
    or an overflow in one member cannot reach another.
    """
    E, n, d_in = U.shape
    d_out = V.shape[1]
    L = min(LANES, E)
    P = (
        to_lanes(W, L), to_lanes(np.ascontiguousarray(W.transpose(0, 2, 1)), L),
        to_lanes(np.ascontiguousarray(U.transpose(0, 2, 1)), L),
        np.ascontiguousarray(to_lanes(b.reshape(E, n, 1), L)[:, :, 0]), to_lanes(V, L),
        to_lanes(np.ascontiguousarray(V.transpose(0, 2, 1)), L),
        np.ascontiguousarray(to_lanes(c.reshape(E, d_out, 1), L)[:, :, 0]),
    )  # fmt: skip
    blocks = P[0].shape[0]
    G = (
        np.zeros((blocks, n, n, L)), np.zeros((blocks, n, d_in, L)), np.zeros((blocks, n, L)),
        np.zeros((blocks, d_out, n, L)), np.zeros((blocks, d_out, L)),
    )  # fmt: skip
    losses = np.empty(E)
    lanes_blocks(P, x, h0, code, target, labels, loss_code, losses, G)
    gb = from_lanes(G[2].reshape(blocks, n, 1, L), E).reshape(E, n)
    gc = from_lanes(G[4].reshape(blocks, d_out, 1, L), E).reshape(E, d_out)
    return losses, from_lanes(G[0], E), from_lanes(G[1], E), gb, from_lanes(G[3], E), gc
