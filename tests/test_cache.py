"""Numba's on-disk cache works from the installed package: a second process does not recompile."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import rnnsim

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


# -- read-only installs (issue 18) ----------------------------------------------------------------

READONLY_PROBE = """
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import rnnsim
    from rnnsim.kernels.cache import locate
    from rnnsim.kernels.mlp import state_offsets
    rnnsim.runtime.configure()
    offsets, size = state_offsets(np.array([2, 3], dtype=np.int64), 1)
print(json.dumps({
    "file": rnnsim.__file__, "where": locate(), "result": [offsets.tolist(), int(size)],
    "warnings": [str(w.message) for w in caught if "rnnsim:" in str(w.message)],
    "hits": sum(state_offsets.stats.cache_hits.values()),
    "misses": sum(state_offsets.stats.cache_misses.values()),
}))
"""


@pytest.fixture
def readonly_install():
    """A copy of the package without write permission, a home directory with it and one without:
    (package parent, writable home, read-only home). Root ignores permissions: `_run_readonly`
    then mounts the read-only directories read-only in a mount namespace of the child."""
    base = Path(tempfile.mkdtemp(prefix="rnnsim-readonly-", dir="/tmp"))
    package = Path(rnnsim.__file__).parent
    shutil.copytree(package, base / "pkg" / "rnnsim", ignore=shutil.ignore_patterns("__pycache__"))
    writable, readonly = base / "home", base / "home-readonly"
    writable.mkdir()
    readonly.mkdir()
    for root, _, files in os.walk(base / "pkg"):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)
    os.chmod(readonly, 0o555)
    os.chmod(base, 0o755)
    yield base / "pkg", writable, readonly
    for root, _, _ in os.walk(base):
        os.chmod(root, 0o755)
    shutil.rmtree(base)


def _run_readonly(pkg, home, readonly):
    """Run `READONLY_PROBE` on the copy ``pkg`` with ``home`` as HOME; return its JSON. As root,
    the directories ``readonly`` are bind-mounted read-only for the child (``unshare -m``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "XDG_CACHE_HOME")
    }
    env.update(HOME=str(home), PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-c", READONLY_PROBE]
    if os.geteuid() == 0:
        mounts = " && ".join(
            f"mount --bind {shlex.quote(str(d))} {shlex.quote(str(d))} && "
            f"mount -o remount,bind,ro {shlex.quote(str(d))}"
            for d in readonly
        )
        run = " ".join(shlex.quote(c) for c in command)
        command = ["unshare", "-m", "sh", "-c", f"{{ {mounts}; }} || exit 97; exec {run}"]
    out = subprocess.run(command, cwd=pkg, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode == 97:
        pytest.skip(f"running as root, and cannot mount read-only directories: {out.stderr}")
    assert out.returncode == 0, out.stderr[-3000:]
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state["file"].startswith(str(pkg))  # the read-only copy, not the checkout
    assert state["result"] == [[0, 2], 5]
    return state


def test_read_only_package_caches_kernels_in_the_user_cache(readonly_install):
    pkg, home, _ = readonly_install
    first = _run_readonly(pkg, home, [pkg])
    path, where = first["where"]
    assert where == "user" and path.startswith(str(home))
    assert (
        len(first["warnings"]) == 1
        and "read-only; Numba caches the kernels in" in (first["warnings"][0])
    )
    second = _run_readonly(pkg, home, [pkg])
    assert second["hits"] == 1 and second["misses"] == 0  # loaded, not compiled again
    assert second["warnings"] == []  # said once


def test_nothing_writable_runs_uncached_with_one_warning(readonly_install):
    pkg, _, readonly_home = readonly_install
    state = _run_readonly(pkg, readonly_home, [pkg, readonly_home])
    assert state["where"] == [None, None]
    assert len(state["warnings"]) == 1
    assert state["warnings"][0].startswith("rnnsim: no writable directory for Numba's kernel cache")
    assert state["hits"] == 0 and state["misses"] == 1
