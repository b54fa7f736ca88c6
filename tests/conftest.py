"""Shared test configuration: one tolerance for kernel-vs-reference comparisons, seeded generators,
one BLAS thread, and the kernels compiled (or loaded from cache) once per session."""

import matplotlib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import rnnsim

# Kernels and their NumPy twins do the same float64 arithmetic in a different order (BLAS blocking,
# hoisted matrix products), so they agree to a few ulps per operation; 1e-10 relative is far above
# that and far below any real bug.
RTOL = 1e-10
ATOL = 1e-12

# The tests' matrices are small: a multi-threaded BLAS only adds thread wake-ups to them, and on a
# loaded machine those cost more than the arithmetic.
threadpool_limits(1, user_api="blas")

matplotlib.use("Agg")  # figures are files here, as in the rnnsim command


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels():
    """Pay compilation (or cache loading) once, before the first test."""
    return rnnsim.warmup()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
