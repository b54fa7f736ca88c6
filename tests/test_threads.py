"""The kernels' thread policy (`rnnsim.kernels.blas`): how many threads a call takes, and the
map that runs one independent piece per thread."""

import subprocess
import sys
import time

import numba
import numpy as np
import pytest

from rnnsim.kernels import blas


def test_kernel_threads_stays_within_numba_setting_and_cores():
    threads = numba.get_num_threads()
    assert 1 <= blas.kernel_threads() <= min(threads, blas.THREADS)
    numba.set_num_threads(1)
    try:
        assert blas.kernel_threads() == 1
    finally:
        numba.set_num_threads(threads)


def test_single_threaded_blas_restores_numba_threads():
    """Inside, barrier kernels get the policy's count and independent pieces the caller's."""
    threads = numba.get_num_threads()
    with blas.single_threaded_blas():
        assert 1 <= numba.get_num_threads() <= threads
        assert blas.kernel_threads(barriers=False) == min(threads, blas.THREADS)
        with blas.single_threaded_blas():
            assert blas.kernel_threads(barriers=False) == min(threads, blas.THREADS)
    assert numba.get_num_threads() == threads


def test_busy_elsewhere_sees_a_busy_process():
    """A process spinning on a core is counted (in at least one of many instantaneous samples:
    the machine may be shared, and the child needs a moment to start)."""
    assert blas.busy_elsewhere() >= 0
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        seen = 0
        for _ in range(50):
            time.sleep(blas.BUSY_READING_SECONDS)
            seen = max(seen, blas.busy_elsewhere())
        assert seen >= 1
    finally:
        child.kill()
        child.wait()


def test_parallel_map_keeps_order_and_raises():
    items = [(i, np.full(1000, float(i))) for i in range(23)]
    assert blas.parallel_map(lambda i, a: i + a.sum(), items) == [i + 1000.0 * i for i in range(23)]
    assert blas.parallel_map(lambda i: i, []) == []

    def fail(i):
        if i == 7:
            raise ValueError("seven")
        return i

    with pytest.raises(ValueError, match="seven"):
        blas.parallel_map(fail, [(i,) for i in range(12)])


def test_bench_with_contention_times_each_row_quiet_and_busy():
    """`rnnsim bench --contention`: the same rows twice, the second time beside a busy process
    that bench starts and ends; the ratio of the two timings per row."""
    from rnnsim import bench

    calls = []

    def run():
        calls.append(blas.busy_elsewhere())
        ms = 2.0 if len(calls) == 2 else 1.0
        return [{"suite": "s", "case": "c", "rnnsim_ms": ms, "first_ms": 5.0, "n": 3}]

    (out,) = bench.with_contention(run)
    assert out == {"suite": "s", "case": "c", "n": 3, "quiet_ms": 1.0, "busy_ms": 2.0,
                   "contention": 2.0}  # fmt: skip
    assert len(calls) == 2
