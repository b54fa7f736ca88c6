"""BLAS and LAPACK routines called directly: dgemm, dsyrk, dtrsm, dtrmm and dpotrf.

Numba's ``np.dot`` and ``np.linalg`` call SciPy's BLAS and LAPACK, but QR re-orthonormalisation
needs more: a Gram matrix in half the work of a general product (``dsyrk``), triangular solves and
products (``dtrsm``, ``dtrmm``), a Cholesky factorisation in place (``dpotrf``; Numba's copies
its input and output) and products of column blocks of a matrix without copying them (``dgemm``
with a leading dimension). The kernels call SciPy's Fortran routines through their addresses, which
`routine_addresses` looks up and which kernels receive as an argument (``routines``, int64 array):
an address frozen into a kernel cached on disk would be wrong in the next process.

Matrices are row-major 2-D arrays whose rows are contiguous (a C-contiguous array or a block of
its columns), which Fortran reads as their transposes with the row stride as leading dimension;
each wrapper says what it computes in the row-major view.
"""

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.extending import get_cython_function_address, intrinsic

from rnnsim.kernels.jit import JIT_INLINE

SYRK, TRSM, TRMM, POTRF, GEMM = 0, 1, 2, 3, 4
_ROUTINES = (
    ("scipy.linalg.cython_blas", "dsyrk"),
    ("scipy.linalg.cython_blas", "dtrsm"),
    ("scipy.linalg.cython_blas", "dtrmm"),
    ("scipy.linalg.cython_lapack", "dpotrf"),
    ("scipy.linalg.cython_blas", "dgemm"),
)
_ADDRESSES = []


def routine_addresses():
    """Addresses of SciPy's dsyrk, dtrsm, dtrmm, dpotrf and dgemm in this process.

    Returns
    -------
    int64 array (5,), indexed by `SYRK`, `TRSM`, `TRMM`, `POTRF`, `GEMM`; pass it to the kernels
    as ``routines``.
    """
    if not _ADDRESSES:
        _ADDRESSES.append(
            np.array([get_cython_function_address(m, f) for m, f in _ROUTINES], dtype=np.int64)
        )
    return _ADDRESSES[0]


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
            [builder.inttoptr(builder.extract_value(args[1], i), byte_ptr) for i in range(count)],
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


if config.DISABLE_JIT:  # the kernels' plain-Python run (tests/test_nojit.py): NumPy and SciPy

    def syrk_lower(routines, Zt, G):  # noqa: F811
        G[...] = np.tril(Zt @ Zt.T) + np.triu(G, 1)

    def potrf_lower(routines, G):  # noqa: F811
        try:
            L = np.linalg.cholesky(np.tril(G) + np.tril(G, -1).T)
        except np.linalg.LinAlgError:
            return 1
        G[...] = L + np.triu(G, 1)
        return 0

    def trsm_lower_left(routines, L, X):  # noqa: F811
        from scipy.linalg import solve_triangular

        X[...] = solve_triangular(np.tril(L), X, lower=True)

    def trmm_lower_transposed_left(routines, Ct, Y):  # noqa: F811
        Y[...] = np.tril(Ct).T @ Y

    def gemm(routines, A, B, C):  # noqa: F811
        C[...] = A @ B
