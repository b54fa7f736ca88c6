"""Importing rnnsim changes nothing in the process; `rnnsim.runtime.configure` does, when asked.

Each check runs in a fresh interpreter with its own Numba cache directory, whose cache holds a
stale stamp and a cached "kernel" file, as after an edit of the kernels' sources.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Probes of the process state, printed as JSON by the child process.
PROBE = """
import ctypes, json, sys
import matplotlib

class Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Mallinfo2

def probe():
    # 64 MiB is above glibc's largest dynamic mmap threshold (32 MiB) and below rnnsim's (256 MiB):
    # glibc's default serves it by mmap, rnnsim's setting from the heap.
    before = libc.mallinfo2().hblks
    p = libc.malloc(64 << 20)
    mmapped = libc.mallinfo2().hblks > before
    libc.free(p)
    from numba.np.ufunc import parallel
    return {"mmapped": mmapped, "pool": bool(parallel._is_initialized),
            "backend": matplotlib.get_backend().lower()}
"""


def _child(code: str, cache: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "MPLBACKEND": "svg"}
    for var in ("RNNSIM_KEEP_MEMORY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE + code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def stale_cache(tmp_path):
    """A Numba cache dir whose rnnsim kernels look stale: returns (cache dir, stamp, dummy file)."""
    where = _child(
        "from rnnsim.kernels.cache import cache_dir, STAMP\n"
        "print(json.dumps({'dir': cache_dir(), 'stamp': STAMP}))",
        tmp_path,
    )
    d = Path(where["dir"])
    d.mkdir(parents=True, exist_ok=True)
    (d / where["stamp"]).write_text("stale")
    (d / "rnn.rnn_forward-1.py311.nbi").write_text("old machine code")
    return d / where["stamp"], d / "rnn.rnn_forward-1.py311.nbi", tmp_path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="probes glibc's malloc")
def test_import_leaves_the_process_alone(stale_cache):
    stamp, dummy, cache = stale_cache
    state = _child(
        "before = probe()\nimport rnnsim, rnnsim.plots, rnnsim.experiment, rnnsim.cli\n"
        "print(json.dumps({'before': before, 'after': probe()}))",
        cache,
    )
    assert state["before"]["mmapped"] and not state["before"]["pool"]
    assert state["after"] == state["before"]  # malloc policy, thread pool, backend ("svg")
    assert state["after"]["backend"] == "svg"
    assert stamp.read_text() == "stale" and dummy.exists()  # the Numba cache is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="probes glibc's malloc")
def test_configure_applies_each_setting_once(stale_cache):
    stamp, dummy, cache = stale_cache
    state = _child(
        "import rnnsim\nfirst = rnnsim.runtime.configure()\n"
        "again = rnnsim.runtime.configure()\n"
        "print(json.dumps({'first': first, 'again': again, 'state': probe()}))",
        cache,
    )
    assert state["first"] == {"kept_memory": True, "refreshed_cache": True, "thread_pool": True}
    assert state["again"] == state["first"]
    assert state["state"]["pool"] and not state["state"]["mmapped"]
    assert not dummy.exists() and stamp.read_text() != "stale"


def test_configure_can_leave_memory_alone(tmp_path):
    state = _child(
        "import rnnsim\nrnnsim.runtime.configure(keep_memory=False, refresh_cache=False)\n"
        "print(json.dumps(probe()))",
        tmp_path,
    )
    assert state["mmapped"] and state["pool"]
