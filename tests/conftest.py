"""Shared test configuration: one tolerance for kernel-vs-reference comparisons, seeded generators."""

import numpy as np
import pytest

# Kernels and their NumPy twins do the same float64 arithmetic in a different order (BLAS blocking,
# hoisted matrix products), so they agree to a few ulps per operation; 1e-10 relative is far above
# that and far below any real bug.
RTOL = 1e-10
ATOL = 1e-12


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
