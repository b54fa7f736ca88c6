"""Run the kernel tests a second time with ``NUMBA_DISABLE_JIT=1`` under coverage.

With the JIT off the kernels run as plain Python, so coverage can see which of their lines the
tests exercise; the same assertions must hold. Each entry pairs a test file with the kernel modules
it exercises (several test files, space-separated, when together they exercise a module).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# test file -> kernel modules whose lines it must cover
SUITES = {
    "tests/test_engine.py tests/test_threads.py": [
        "rnnsim/kernels/activations.py",
        "rnnsim/kernels/blas.py",
        "rnnsim/kernels/losses.py",
        "rnnsim/kernels/rnn.py",
        "rnnsim/kernels/mlp.py",
    ],
    "tests/test_hvp.py": ["rnnsim/kernels/hvp.py"],
    "tests/test_jacobians.py": [
        "rnnsim/kernels/linalg.py",
        "rnnsim/kernels/norms.py",
        "rnnsim/kernels/spectrum.py",
    ],
    "tests/test_lyapunov.py": ["rnnsim/kernels/lyapunov.py"],
    "tests/test_cliff.py": ["rnnsim/kernels/cliff.py"],
    "tests/test_ensemble.py": ["rnnsim/kernels/ensemble.py"],
    "tests/test_train_compiled.py": ["rnnsim/kernels/train.py"],
}
MIN_LINE_COVERAGE = 0.9


@pytest.mark.parametrize("test_file", sorted(SUITES))
def test_kernels_without_jit_under_coverage(test_file, tmp_path):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", COVERAGE_FILE=str(tmp_path / ".coverage"))
    modules = SUITES[test_file]
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", f"--include={','.join(modules)}",
         "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *test_file.split()],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = tmp_path / "coverage.json"
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", "-o", str(report)],
        cwd=ROOT, env=env, capture_output=True, check=True,
    )  # fmt: skip
    files = json.loads(report.read_text())["files"]
    for module in modules:
        summary = files[module]["summary"]
        covered = summary["covered_lines"] / max(summary["num_statements"], 1)
        assert covered >= MIN_LINE_COVERAGE, (
            f"{module}: only {covered:.0%} of its lines run without the JIT; missing "
            f"{files[module]['missing_lines']}"
        )
