"""Keep Numba's on-disk cache of the kernels in step with their sources.

Numba keys each cached kernel on the time stamp of its own source file only. Kernels here inline
functions from other files (every kernel calls `activations` and `blas` helpers), so after an edit
to one of those files a kernel would keep running its old machine code. `refresh_stale_cache`
keeps a hash of all kernel sources beside the cache and removes this package's cached kernels when
the hash changes; they are then compiled afresh on first use.
"""

import glob
import hashlib
import os

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))
STAMP = "rnnsim-kernel-sources.sha256"


def _probe():  # a function of this directory, for Numba's cache locator
    pass


def sources_digest():
    """SHA-256 (hex) of every kernel module's source, in name order."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(KERNELS_DIR, "*.py"))):
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def cache_dir():
    """The directory where Numba caches this package's kernels (it honours ``NUMBA_CACHE_DIR``),
    or None when Numba's locator cannot be queried."""
    try:
        from numba.core.caching import CompileResultCacheImpl

        return CompileResultCacheImpl(_probe)._locator.get_cache_path()
    except Exception:  # a private Numba API: without it the cache is simply left alone
        return None


def refresh_stale_cache():
    """Remove the cached kernels of this package when their sources changed since they were cached.

    Returns
    -------
    bool
        True when stale cache files were looked for and removed (the stamp was missing or old).
    """
    path = cache_dir()
    if path is None:
        return False
    digest = sources_digest()
    stamp = os.path.join(path, STAMP)
    try:
        with open(stamp) as f:
            if f.read().strip() == digest:
                return False
    except OSError:
        pass
    modules = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(KERNELS_DIR + "/*.py")}
    try:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith((".nbi", ".nbc")) and name.split(".", 1)[0] in modules:
                try:
                    os.remove(os.path.join(path, name))
                except OSError:  # another process removed it first
                    pass
        tmp = f"{stamp}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(digest)
        os.replace(tmp, stamp)
    except OSError:  # a read-only cache: Numba will not write to it either
        return False
    return True
