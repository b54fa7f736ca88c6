"""The linear algebra beneath the Jacobian kernels (`norms`, `spectrum`, `lyapunov`).

Every algorithm there grows a product of step factors (`step_factor`), ``P <- P @ At``, in the
transposed layout: the rows of ``P`` (or of an orthonormal basis ``Qt``) are the vectors, so that
every matrix product is a BLAS call on rows. This module holds what they share:

- the direct BLAS and LAPACK calls (dgemm, dsyrk, dtrsm, dtrmm, dpotrf, dgejsv) by address;
- products, Gram matrices and triangular solves split into column blocks that run on separate
  cores (`column_chunks`);
- Cholesky QR (`orthonormalise`): ``Z = A Q = Q' R'`` by ``Z^T Z = R'^T R'``, one or two passes,
  Householder when the Gram matrix is too ill-conditioned;
- the accumulated triangular factor ``R = diag(exp(sigma)) Y`` with unit-norm rows ``Y`` and log
  row scales ``sigma`` (`accumulate_triangular`).

Direct calls. Numba's ``np.dot`` and ``np.linalg`` call SciPy's BLAS and LAPACK, but QR
re-orthonormalisation needs more: a Gram matrix in half the work of a general product
(``dsyrk``), triangular solves and products (``dtrsm``, ``dtrmm``), a Cholesky factorisation in
place (``dpotrf``; Numba's copies its input and output), products of column blocks of a matrix
without copying them (``dgemm`` with a leading dimension), and the singular values of many matrices
at once from threads that do not hold the GIL (``dgejsv``; SciPy's wrapper holds it). The kernels call SciPy's Fortran
routines through their addresses, which `routine_addresses` looks up and which kernels receive as
an argument (``routines``, int64 array): an address frozen into a kernel cached on disk would be
wrong in the next process. Matrices are row-major 2-D arrays whose rows are contiguous (a
C-contiguous array or a block of its columns), which Fortran reads as their transposes with the
row stride as leading dimension; each wrapper says what it computes in the row-major view. With
``NUMBA_DISABLE_JIT=1`` the wrappers are NumPy and SciPy calls instead.
"""

import math

import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.extending import get_cython_function_address, intrinsic

from rnnsim.kernels.activations import dphi_from_h
from rnnsim.kernels.blas import THREADS
from rnnsim.kernels.jit import JIT, JIT_INLINE

# ---------------------------------------------------------------------------------------------
# BLAS and LAPACK by address
# ---------------------------------------------------------------------------------------------

SYRK, TRSM, TRMM, POTRF, GEMM, GEJSV = 0, 1, 2, 3, 4, 5
_ROUTINES = (
    ("scipy.linalg.cython_blas", "dsyrk"),
    ("scipy.linalg.cython_blas", "dtrsm"),
    ("scipy.linalg.cython_blas", "dtrmm"),
    ("scipy.linalg.cython_lapack", "dpotrf"),
    ("scipy.linalg.cython_blas", "dgemm"),
    ("scipy.linalg.cython_lapack", "dgejsv"),
)
_ADDRESSES = []


def routine_addresses():
    """Addresses of SciPy's dsyrk, dtrsm, dtrmm, dpotrf, dgemm and dgejsv in this process.

    Returns
    -------
    int64 array (6,), indexed by `SYRK`, `TRSM`, `TRMM`, `POTRF`, `GEMM`, `GEJSV`; pass it to the kernels
    as ``routines``.
    """
    if not _ADDRESSES:
        _ADDRESSES.append(
            np.array([get_cython_function_address(m, f) for m, f in _ROUTINES], dtype=np.int64)
        )
    return _ADDRESSES[0]


# The calls by address are compiled code only (an LLVM intrinsic); with the JIT off, NumPy and
# SciPy twins stand in for them, so the coverage run cannot see these lines.
if not config.DISABLE_JIT:  # pragma: no cover

    @intrinsic
    def _call(typingctx, address, pointers):
        """Call the Fortran routine at ``address`` (int64) with ``pointers`` (a tuple of addresses,
        one per argument: Fortran passes every argument by reference)."""
        count = len(pointers)

        def codegen(context, builder, signature, args):
            byte_ptr = ir.IntType(8).as_pointer()
            fn_type = ir.FunctionType(ir.VoidType(), [byte_ptr] * count)
            fn = builder.inttoptr(args[0], fn_type.as_pointer())
            builder.call(
                fn,
                [
                    builder.inttoptr(builder.extract_value(args[1], i), byte_ptr)
                    for i in range(count)
                ],
            )
            return context.get_dummy_value()

        return types.void(address, pointers), codegen

    @njit(**JIT_INLINE)
    def _scalars(chars, ints, alpha):
        """Fortran by-reference arguments: ``chars`` (bytes), then int32 ``ints``, then ``alpha``."""
        c = np.empty(len(chars), dtype=np.uint8)
        for i in range(len(chars)):
            c[i] = chars[i]
        n = np.empty(len(ints), dtype=np.int32)
        for i in range(len(ints)):
            n[i] = ints[i]
        f = np.array([alpha, 0.0])
        return c, n, f

    @njit(**JIT_INLINE)
    def _ld(A):
        """Leading dimension of a row-major array with contiguous rows (Fortran's view)."""
        return max(1, A.strides[0] // 8)

    @njit(**JIT_INLINE)
    def syrk_lower(routines, Zt, G):
        """The lower triangle of ``G = Zt Zt^T`` (G (k, k), Zt (k, n)); the strict upper triangle of
        G is left as it was. Half the multiply-adds of ``np.dot(Zt, Zt.T)``."""
        k, n = Zt.shape
        c, i, f = _scalars((85, 84), (k, n, _ld(Zt), _ld(G)), 1.0)  # 'U','T': it sees Zt^T, G^T
        _call(
            routines[SYRK],
            (c.ctypes.data, c.ctypes.data + 1, i.ctypes.data, i.ctypes.data + 4, f.ctypes.data,
             Zt.ctypes.data, i.ctypes.data + 8, f.ctypes.data + 8, G.ctypes.data, i.ctypes.data + 12),
        )  # fmt: skip
        return c[0] + i[0] + f[0]  # keeps the argument arrays alive until after the call

    @njit(**JIT_INLINE)
    def potrf_lower(routines, G):
        """Cholesky factorisation in place: the lower triangle of G (k, k) becomes L with
        ``G = L L^T`` (only the lower triangle of G is read; the strict upper one is left as it was).

        Returns LAPACK's ``info``: 0 on success, i > 0 when the leading minor of order i is not
        positive definite.
        """
        k = G.shape[0]
        c, i, f = _scalars((85,), (k, _ld(G), 0), 0.0)  # Fortran's 'U' is the row-major lower
        _call(
            routines[POTRF],
            (c.ctypes.data, i.ctypes.data, G.ctypes.data, i.ctypes.data + 4, i.ctypes.data + 8),
        )
        return i[2] + 0 * (c[0] + f[0])

    @njit(**JIT_INLINE)
    def _triangular_right(address, transa, T, X):
        """dtrsm or dtrmm (at ``address``) as Fortran sees a row-major X (k, m) and a lower-triangular
        T (k, k): ``X^T <- X^T op(T^T)`` with side 'R', uplo 'U' (T's lower triangle), diag 'N' and
        ``transa`` ('N' = 78 or 'T' = 84)."""
        k, m = X.shape
        c, i, f = _scalars((82, 85, transa, 78), (m, k, _ld(T), _ld(X)), 1.0)
        _call(
            address,
            (c.ctypes.data, c.ctypes.data + 1, c.ctypes.data + 2, c.ctypes.data + 3, i.ctypes.data,
             i.ctypes.data + 4, f.ctypes.data, T.ctypes.data, i.ctypes.data + 8, X.ctypes.data,
             i.ctypes.data + 12),
        )  # fmt: skip
        return c[0] + i[0] + f[0]

    @njit(**JIT_INLINE)
    def trsm_lower_left(routines, L, X):
        """``X <- L^{-1} X`` in place, for L (k, k) lower triangular (its strict upper triangle is not
        read) and X (k, n)."""
        return _triangular_right(routines[TRSM], 78, L, X)  # X^T <- X^T L^-T

    @njit(**JIT_INLINE)
    def trmm_lower_transposed_left(routines, Ct, Y):
        """``Y <- Ct^T Y`` in place, for Ct (k, k) lower triangular (its strict upper triangle is not
        read) and Y (k, r): half the multiply-adds of a general product."""
        return _triangular_right(routines[TRMM], 84, Ct, Y)  # Y^T <- Y^T Ct

    @njit(**JIT_INLINE)
    def gemm(routines, A, B, C):
        """``C <- A B`` for A (m, k), B (k, p), C (m, p), any of them blocks of columns."""
        m, k = A.shape
        p = B.shape[1]
        c, i, f = _scalars((78, 78), (p, m, k, _ld(B), _ld(A), _ld(C)), 1.0)  # C^T <- B^T A^T
        _call(
            routines[GEMM],
            (c.ctypes.data, c.ctypes.data + 1, i.ctypes.data, i.ctypes.data + 4, i.ctypes.data + 8,
             f.ctypes.data, B.ctypes.data, i.ctypes.data + 12, A.ctypes.data, i.ctypes.data + 16,
             f.ctypes.data + 8, C.ctypes.data, i.ctypes.data + 20),
        )  # fmt: skip
        return c[0] + i[0] + f[0]

    @njit(**JIT)
    def gejsv_values(routines, Gt):
        """Singular values of G = Gt^T (m, k), m >= k, by LAPACK's preconditioned one-sided Jacobi
        SVD without vectors (dgejsv, JOBA 'G', JOBT 'N', JOBR 'R', JOBP 'P': what SciPy's
        ``lapack.dgejsv(G, joba=3, jobu=3, jobv=3)`` runs, with its workspace, so that the values
        are the same to the bit). Gt (k, m) is row-major, so Fortran sees G; it is not modified.
        Releases the GIL, so that threads can factor several matrices at once.

        Returns
        -------
        sva : float64 array (k,); the singular values are ``sva * (work[1] / work[0])`` (dgejsv
            scales them when they would overflow). work : float64 array (2,), that pair.
        info : int, LAPACK's (0: success).
        """
        k, m = Gt.shape
        A = Gt.copy()
        lwork = max(6 * k + 2 * k * k, 2 * m + k, 4 * k + k * k, 2 * k + k * k + 6, 7)
        c, i, f = _scalars((71, 78, 78, 82, 78, 80), (m, k, m, 1, 1, lwork, 0), 0.0)
        sva = np.empty(k)
        uv = np.empty(1)  # U and V are not referenced without vectors
        work = np.empty(lwork)
        iwork = np.empty(m + 3 * k, dtype=np.int32)
        _call(
            routines[GEJSV],
            (c.ctypes.data, c.ctypes.data + 1, c.ctypes.data + 2, c.ctypes.data + 3,
             c.ctypes.data + 4, c.ctypes.data + 5, i.ctypes.data, i.ctypes.data + 4,
             A.ctypes.data, i.ctypes.data + 8, sva.ctypes.data, uv.ctypes.data, i.ctypes.data + 12,
             uv.ctypes.data, i.ctypes.data + 16, work.ctypes.data, i.ctypes.data + 20,
             iwork.ctypes.data, i.ctypes.data + 24),
        )  # fmt: skip
        return sva, work[:2].copy(), i[6] + 0 * (c[0] + f[0] + A[0, 0] + uv[0] + iwork[0])
else:  # the kernels' plain-Python run (tests/test_nojit.py): NumPy and SciPy

    def syrk_lower(routines, Zt, G):
        G[...] = np.tril(Zt @ Zt.T) + np.triu(G, 1)

    def potrf_lower(routines, G):
        try:
            L = np.linalg.cholesky(np.tril(G) + np.tril(G, -1).T)
        except np.linalg.LinAlgError:
            return 1
        G[...] = L + np.triu(G, 1)
        return 0

    def trsm_lower_left(routines, L, X):
        from scipy.linalg import solve_triangular

        X[...] = solve_triangular(np.tril(L), X, lower=True)

    def trmm_lower_transposed_left(routines, Ct, Y):
        Y[...] = np.tril(Ct).T @ Y

    def gemm(routines, A, B, C):
        C[...] = A @ B

    def gejsv_values(routines, Gt):
        from scipy.linalg import lapack

        sva, _, _, work, _, info = lapack.dgejsv(np.asfortranarray(Gt.T), joba=3, jobu=3, jobv=3)
        return sva, work[:2], info


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


# ---------------------------------------------------------------------------------------------
# Products split over column blocks
# ---------------------------------------------------------------------------------------------


@njit(**JIT)
def column_chunks(k, n):
    """How many column blocks to split the products of a (k, n) re-orthonormalisation into: one
    per core once the blocks are worth a thread. Columns of ``Qt At`` and of ``L^{-1} Z`` are
    independent and the Gram matrix is a sum over them; single-threaded BLAS on each block is
    much faster at these sizes than one multi-threaded call (below n = 100 or so neither pays)."""
    return THREADS if k * n * n >= 1 << 20 else 1


@njit(**JIT)
def product_columns(Zt, Wt, Znew, routines, c0, c1):
    """Columns c0:c1 of ``Znew = Zt Wt``."""
    if c1 > c0:
        gemm(routines, Zt, Wt[:, c0:c1], Znew[:, c0:c1])


@njit(**JIT)
def product_share(Zt, Wt, Znew, routines, c, chunks, extra):
    """Thread c's columns (of ``chunks`` threads) of ``Znew = Zt Wt`` when thread 0 also does
    other work that takes as long as ``extra`` columns: the n + extra columns' worth is split
    evenly, and thread 0's share is that much short."""
    total = Znew.shape[1] + extra
    c0 = max(0, c * total // chunks - extra)
    c1 = max(0, (c + 1) * total // chunks - extra)
    product_columns(Zt, Wt, Znew, routines, c0, c1)


@njit(**JIT, parallel=True)
def _product_blocks(Qt, At, Zt, routines, chunks):
    n = Zt.shape[1]
    for c in prange(chunks):
        product_columns(Qt, At, Zt, routines, c * n // chunks, (c + 1) * n // chunks)


@njit(**JIT)
def product(Qt, At, routines, chunks):
    """``Qt At`` (k, n) for Qt (k, m), At (m, n), by ``chunks`` column blocks in parallel."""
    Zt = np.empty((Qt.shape[0], At.shape[1]))
    if chunks == 1:
        product_columns(Qt, At, Zt, routines, 0, Zt.shape[1])
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
    return sum_lower(_gram_blocks(Zt, routines, chunks))


@njit(**JIT)
def sum_lower(parts):
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


# ---------------------------------------------------------------------------------------------
# Cholesky QR and the accumulated triangular factor
# ---------------------------------------------------------------------------------------------


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
def cholesky_sine(routines, G):
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
def one_pass(smin, kappa_max):
    """Whether one Cholesky pass is accurate: the sine ``smin`` of `cholesky_sine` estimates
    the equilibrated condition number as 1 / smin, which must not exceed ``kappa_max``."""
    return smin * kappa_max >= 1.0


@njit(**JIT)
def orthonormalise(Zt, kappa_max, routines, chunks):
    """Orthonormalise the rows of ``Zt`` (k, n), k <= n: ``Zt = Lt Qt`` with Lt lower triangular.
    Zt is overwritten (by Qt, which is then Zt itself, after one Cholesky pass).

    (Equivalently ``Z = Q R`` for Z = Zt^T, R = Lt^T.) Cholesky QR: ``Lt = chol(Zt Zt^T)``,
    ``Qt = Lt^{-1} Zt`` (BLAS syrk, LAPACK potrf, BLAS trsm, called by the
    addresses ``routines`` holds; products split into ``chunks`` column blocks, `column_chunks`).
    Its accuracy depends on the condition number of Z with equilibrated columns (Cholesky's
    errors scale with sqrt(G_ii G_jj)), estimated by ``1 / min_i Lt_ii / sqrt(G_ii)``
    (`cholesky_sine`): one pass when that is below ``kappa_max``, a second pass (CholQR2) below
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
    return orthonormalise_factored(Zt, L1, cholesky_sine(routines, L1), kappa_max, routines, chunks)


@njit(**JIT)
def orthonormalise_factored(Zt, L1, smin, kappa_max, routines, chunks):
    """`orthonormalise` once the Gram matrix of Zt has been factored into L1 by `cholesky_sine`,
    which returned ``smin``."""
    k = Zt.shape[0]
    if one_pass(smin, kappa_max):
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
            return Q1, np.dot(L1, L2), 2  # Zt = L1 Q1t = L1 L2 Qt
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
