"""Numba's on-disk cache works from the installed package: a second process does not recompile."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json
import numpy as np
import rnnsim
from rnnsim.kernels.mlp import mlp_loss_grad
from rnnsim.kernels.rnn import rnn_loss_grad

m = rnnsim.RNN.random(2, 8, 1, seed=0)
m.loss_and_grad(np.ones((5, 1, 2)), np.ones((1, 1)))
rnnsim.MLP.random(4, 3, n_out=1).loss_and_grad(np.ones((2, 4)), np.ones((2, 1)))
print(json.dumps({
    f.__name__: {"hits": sum(f.stats.cache_hits.values()), "misses": sum(f.stats.cache_misses.values())}
    for f in (rnn_loss_grad, mlp_loss_grad)
}))
"""


def run_fresh_process():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_kernels_from_cache():
    run_fresh_process()  # compiles (or loads) and writes the cache
    stats = run_fresh_process()
    for name, s in stats.items():
        assert s["misses"] == 0 and s["hits"] >= 1, f"{name} was recompiled: {s}"


def test_changed_kernel_sources_empty_the_stale_cache(tmp_path):
    """Numba keys a cached kernel on its own file only; after any kernel source changes,
    `rnnsim.runtime.configure` removes this package's cache files (and only those) and stamps the
    new sources. (Importing rnnsim does not: tests/test_runtime.py.)"""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path)
    configure = "import rnnsim; rnnsim.runtime.configure()"
    where = (
        f"{configure}; from rnnsim.kernels.cache import cache_dir, sources_digest as d; "
        "print(cache_dir(), d())"
    )
    out = subprocess.run(
        [sys.executable, "-c", where], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    path, digest = out.stdout.split()
    assert path.startswith(str(tmp_path))
    stamp = os.path.join(path, "rnnsim-kernel-sources.sha256")
    with open(stamp) as f:
        assert f.read() == digest  # the first configure() stamped the empty cache
    stale = os.path.join(path, "rnn.rnn_forward-1.py311.nbi")
    foreign = os.path.join(path, "elsewhere.f-1.py311.nbi")
    for name, text in ((stale, "old"), (foreign, "x"), (stamp, "an older digest")):
        with open(name, "w") as f:
            f.write(text)
    out = subprocess.run([sys.executable, "-c", configure], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not os.path.exists(stale) and os.path.exists(foreign)
    with open(stamp) as f:
        assert f.read() == digest
    os.remove(foreign)  # with a current stamp nothing is removed
    with open(stale, "w") as f:
        f.write("current")
    subprocess.run([sys.executable, "-c", configure], env=env, check=True)
    assert os.path.exists(stale)
