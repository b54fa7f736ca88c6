"""The kernels' threading policy, and a parallel product.

The kernels parallelise over independent work themselves (batch chunks, blocks of rows, with
``prange``) and call BLAS from inside those threads, so the BLAS that Numba uses (SciPy's) must run
one thread per call while they run: a multi-threaded BLAS called from several threads
oversubscribes the cores, and on a loaded machine a small multi-threaded product can take a
thousand times longer than a single-threaded one. `single_threaded_blas` limits SciPy's BLAS
(the one Numba calls) for the duration of a call; NumPy's is left alone.

**The thread policy** (`kernel_threads`, applied by `single_threaded_blas` around every threaded
kernel call, by `policy_blas` around kernels that leave the threads to BLAS, and by
`parallel_map`) lives here only. A parallel region waits for its slowest
thread, and a kernel that steps through hundreds of regions (one per layer or step) loses a whole
scheduler time slice whenever one of its threads shares a core with another busy process: beside
one busy process the two-thread kernels ran 3 to 20 times slower than alone. So such a call uses
only the cores that no other process is running on at that moment (never fewer than one); the
chunks of a ``prange`` then run one after another on the threads there are, with the same
arithmetic, so the results do not depend on the choice. Independent pieces handed out one at a
time (`parallel_map`) keep every thread: none waits for another.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from rnnsim.kernels.jit import JIT

# Chunks of independent work per parallel region: one per core this process may run on. Numba
# freezes globals into cached kernels, so this must not depend on the environment of whichever
# process compiled first (NUMBA_NUM_THREADS=1 in a worker would disable chunking for every later
# process); numba.get_num_threads() inside a kernel would make it uncacheable. When fewer threads
# are active, prange runs the chunks one after another.
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

# Per-step products with fewer multiply-adds than this use hand loops instead of BLAS.
BLAS_MIN_FLOPS = 1 << 15

# Products with a side (inner dimension, rows or columns) shorter than this run far below BLAS's
# rate; row updates (`add_row_times`) over the longer side are used instead.
BLAS_MIN_SIDE = 8

# Fewer multiply-adds than this per chunk and a parallel region costs more than it saves.
PARALLEL_MIN_FLOPS = 1 << 22

_NUMBA_BLAS = []


def numba_blas():
    """The threadpoolctl controller of the BLAS library that Numba's ``np.dot`` calls (SciPy's),
    found once; None when it cannot be identified."""
    if not _NUMBA_BLAS:
        found = None
        try:
            import scipy
            import scipy.linalg.cython_blas  # noqa: F401 (loads the library Numba will call)
            from threadpoolctl import ThreadpoolController

            scipy_dir = os.path.dirname(os.path.dirname(scipy.__file__))
            for lib in ThreadpoolController().lib_controllers:
                path = os.path.realpath(lib.filepath)
                if path.startswith(scipy_dir) and "numpy" not in os.path.basename(
                    os.path.dirname(path)
                ):
                    found = lib
        except ImportError:  # pragma: no cover - scipy and threadpoolctl are dependencies
            pass
        _NUMBA_BLAS.append(found)
    return _NUMBA_BLAS[0]


# How long a reading of the machine's load stands (seconds): reading it costs ~0.1 ms, more than
# a small kernel call, and a neighbour's load changes over tens of milliseconds, not less.
BUSY_READING_SECONDS = 0.05
_BUSY = [-1.0, 0]  # (time of the last reading, its value)


def busy_elsewhere():
    """How many threads of other processes are running on the machine now: Linux's count of
    running tasks (``/proc/loadavg``) less this process's own running threads; 0 where that
    cannot be read. A reading stands for `BUSY_READING_SECONDS`."""
    now = time.monotonic()
    if now - _BUSY[0] < BUSY_READING_SECONDS:
        return _BUSY[1]
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    own += f.read().rpartition(")")[2].split()[0] == "R"
            except OSError:  # the thread ended meanwhile
                continue
    except (OSError, ValueError, IndexError):
        running = own = 0
    _BUSY[:] = [now, max(0, running - own)]
    return _BUSY[1]


def kernel_threads(barriers=True):
    """The thread policy (module docstring): the threads a kernel call may use now, at most
    Numba's setting as the caller left it (``numba.set_num_threads``; 1 in the workers of a
    parallel experiment). Kernels whose threads wait for each other (``barriers``) take only the
    cores that no other process is running on, at least one; independent pieces that each thread
    takes in turn (`parallel_map`) take every core allowed, since a slow thread there delays
    only its own piece, and the scheduler shares a busy core between threads, not processes."""
    limit = getattr(_CALLER, "threads", None) or numba.get_num_threads()
    if limit <= 1 or not barriers:
        return max(1, min(limit, THREADS))
    return max(1, min(limit, THREADS - busy_elsewhere()))


_CALLER = threading.local()  # Numba's thread setting outside `single_threaded_blas`


@contextmanager
def single_threaded_blas():
    """Run the enclosed kernel calls with Numba's BLAS limited to one thread and Numba's threads
    to `kernel_threads`, then restore both.

    For kernels that call BLAS from inside their own parallel threads (batch chunks); kernels
    that make one large product at a time keep the multi-threaded BLAS.
    """
    lib = numba_blas()
    threads = 1 if lib is None else lib.num_threads
    numba_threads = numba.get_num_threads()
    outer = getattr(_CALLER, "threads", None)
    if threads > 1:
        lib.set_num_threads(1)
    numba.set_num_threads(kernel_threads())
    _CALLER.threads = outer or numba_threads
    try:
        yield
    finally:
        _CALLER.threads = outer
        numba.set_num_threads(numba_threads)
        if threads > 1:
            lib.set_num_threads(threads)


@contextmanager
def policy_blas():
    """Run the enclosed calls of kernels that make one large product at a time (and so keep the
    multi-threaded BLAS) with Numba's BLAS at `kernel_threads` threads, then restore it: a
    product split over two threads waits for both, as a parallel region does."""
    lib = numba_blas()
    threads = 1 if lib is None else lib.num_threads
    want = min(threads, kernel_threads())
    if want == threads:
        yield
        return
    lib.set_num_threads(want)
    try:
        yield
    finally:
        lib.set_num_threads(threads)


_POOL = []
_POOL_LOCK = threading.Lock()


def parallel_map(fn, items):
    """``[fn(*item) for item in items]`` on `kernel_threads` threads, each taking the next item
    when it is done with one (a busy core delays only its current item), in the order given.

    For work that releases the GIL (``nogil`` kernels, NumPy on large arrays) and comes in
    independent pieces of a millisecond or more, such as one singular value decomposition per
    layer: no thread waits for another until the last piece.
    """
    items = list(items)
    workers = min(kernel_threads(barriers=False), len(items))
    if workers <= 1:
        return [fn(*item) for item in items]
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(THREADS - 1, thread_name_prefix="rnnsim"))
    results = [None] * len(items)
    order = iter(range(len(items)))
    lock = threading.Lock()

    def drain():
        while True:
            with lock:
                i = next(order, None)
            if i is None:
                return
            results[i] = fn(*items[i])

    helpers = [_POOL[0].submit(drain) for _ in range(workers - 1)]
    drain()  # the calling thread takes part
    for helper in helpers:
        helper.result()  # a blocking wait; raises what fn raised
    return results


@njit(**JIT, parallel=True)
def at_b_partials(A, B, chunks):
    """Partial products ``A[k0:k1]^T B[k0:k1]`` of ``chunks`` row blocks, in parallel."""
    K, m = A.shape
    partial = np.empty((chunks, m, B.shape[1]))
    for c in prange(chunks):
        k0 = c * K // chunks
        k1 = (c + 1) * K // chunks
        partial[c] = np.dot(A[k0:k1].T, B[k0:k1])
    return partial


@njit(**JIT)
def at_b(A, B):
    """``A^T B`` for A (K, m) and B (K, p), the K rows split over threads when large (partial
    products, then a serial sum): the weight gradients ``sum_t dA_t^T h_{t-1}`` of all T*B rows.

    When m or p is below `BLAS_MIN_SIDE` (input and output weights of a few units), row updates
    (`add_row_times`) over the longer side are used instead of BLAS.
    """
    K, m = A.shape
    p = B.shape[1]
    if min(m, p) < BLAS_MIN_SIDE:
        if m <= p:
            At = np.ascontiguousarray(A.T)
            out = np.zeros((m, p))
            for i in range(m):
                add_row_times(B, At[i], out[i])
            return out
        Bt = np.ascontiguousarray(B.T)
        outT = np.zeros((p, m))
        for j in range(p):
            add_row_times(A, Bt[j], outT[j])
        return np.ascontiguousarray(outT.T)
    chunks = min(THREADS, K * m * p // PARALLEL_MIN_FLOPS)
    if chunks <= 1:
        return np.dot(A.T, B)
    partial = at_b_partials(A, B, chunks)
    out = partial[0].copy()
    for c in range(1, chunks):
        out += partial[c]
    return out


@njit(**JIT)
def column_sums(A):
    """``A.sum(axis=0)`` for A (K, m) C-contiguous, by vectorised row updates (`add_row_times`);
    the bias gradients."""
    out = np.zeros(A.shape[1])
    add_row_times(A, np.ones(A.shape[0]), out)
    return out


@njit(**JIT)
def add_row_times(M, h, out):
    """``out += h M`` for one row: h (k,), M (k, m), out (m,), all C-contiguous.

    Written as row updates ``out += h[j] M[j]``, eight rows of M at a time: each output element
    keeps its own accumulator, so the loop over it vectorises without fastmath, and ``out`` is
    loaded and stored once per eight rows instead of once per row (a store followed by a load of
    the same address is the slowest part of a small product).
    """
    k = h.size
    m = out.size
    k8 = k - k % 8
    for j in range(0, k8, 8):
        w0, w1, w2, w3 = h[j], h[j + 1], h[j + 2], h[j + 3]
        w4, w5, w6, w7 = h[j + 4], h[j + 5], h[j + 6], h[j + 7]
        M0, M1, M2, M3 = M[j], M[j + 1], M[j + 2], M[j + 3]
        M4, M5, M6, M7 = M[j + 4], M[j + 5], M[j + 6], M[j + 7]
        for i in range(m):
            low = (w0 * M0[i] + w1 * M1[i]) + (w2 * M2[i] + w3 * M3[i])
            high = (w4 * M4[i] + w5 * M5[i]) + (w6 * M6[i] + w7 * M7[i])
            out[i] += low + high
    for j in range(k8, k):
        w = h[j]
        Mj = M[j]
        for i in range(m):
            out[i] += w * Mj[i]


@njit(**JIT)
def matmul_into(h, M, out):
    """``out = h M`` (overwritten) for h (B, k), M (k, m), out (B, m): BLAS when large, row
    updates (`add_row_times`) when a BLAS call would cost more than the arithmetic."""
    B, k = h.shape
    if B * k * M.shape[1] >= BLAS_MIN_FLOPS:
        np.dot(h, M, out)
        return
    out[:] = 0.0
    for bb in range(B):
        add_row_times(M, h[bb], out[bb])
