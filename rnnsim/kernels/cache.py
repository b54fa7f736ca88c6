"""Keep Numba's on-disk cache of the kernels in step with their sources, wherever it can live.

Numba keys each cached kernel on the time stamp of its own source file only. Kernels here inline
functions from other files (every kernel calls `activations` and `blas` helpers), so after an edit
to one of those files a kernel would keep running its old machine code. `refresh_stale_cache`
keeps a hash of all kernel sources beside the cache and removes this package's cached kernels when
the hash changes; they are then compiled afresh on first use.

Where the cache lives (`locate`) is Numba's choice, made when a kernel is decorated: the directory
``NUMBA_CACHE_DIR`` names, else the package's own ``__pycache__`` when it is writable, else Numba's
user-wide cache (``~/.cache/numba``). A read-only install therefore caches in the user's
directory, and `refresh_stale_cache` says so once, when it fills that cache. When no directory
is writable Numba refuses ``cache=True`` at decoration ("no locator available"): `cacheable`
tells `rnnsim.kernels.jit` so beforehand, and the kernels then compile in every process.
"""

import glob
import hashlib
import os
import warnings

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))
STAMP = "rnnsim-kernel-sources.sha256"


def _probe():  # a function of this directory, for Numba's cache locator
    pass


def sources_digest():
    """SHA-256 (hex) of every kernel module's source, in name order (not this module's: it
    holds no kernel)."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(KERNELS_DIR, "*.py"))):
        if os.path.basename(path) == os.path.basename(__file__):
            continue
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


# Numba's locator classes (numba.core.caching; with a leading underscore before Numba 0.61)
_LOCATIONS = {
    "UserProvidedCacheLocator": "NUMBA_CACHE_DIR",
    "InTreeCacheLocator": "package",
    "UserWideCacheLocator": "user",
}


def locate():
    """Where Numba caches this package's kernels, as Numba's own locators decide.

    Returns
    -------
    (path, where) : (str, str) or (None, None)
        ``where`` is ``"NUMBA_CACHE_DIR"``, ``"package"`` (the kernels' ``__pycache__``),
        ``"user"`` (Numba's user-wide cache: the package directory is read-only) or another
        locator's name; (None, None) when no directory is writable; (None, "unknown") when
        Numba's (private) locator cannot be queried.
    """
    try:
        from numba.core.caching import CompileResultCacheImpl

        locator = CompileResultCacheImpl(_probe)._locator
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return None, None
    except Exception:  # a private API that changed: the cache is left to Numba
        return None, "unknown"
    name = type(locator).__name__.lstrip("_")
    return locator.get_cache_path(), _LOCATIONS.get(name, name)


def cache_dir():
    """The directory where Numba caches this package's kernels (see `locate`), or None."""
    return locate()[0]


def cacheable():
    """True when Numba can cache the kernels on disk; else warn once, in one line, and return
    False (the kernels then compile in every process instead of failing at import)."""
    from numba.core import config

    path, where = locate()
    if config.DISABLE_JIT or path is not None or where == "unknown":
        return True
    warnings.warn(
        "rnnsim: no writable directory for Numba's kernel cache (the package's __pycache__, "
        "NUMBA_CACHE_DIR and ~/.cache/numba); kernels are compiled in every process, uncached",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def refresh_stale_cache():
    """Remove the cached kernels of this package when their sources changed since they were cached.

    Returns
    -------
    bool
        True when stale cache files were looked for and removed (the stamp was missing or old).
    """
    path, where = locate()
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
    if where == "user":
        warnings.warn(
            f"rnnsim: the package directory {KERNELS_DIR} is read-only; Numba caches the "
            f"kernels in {path}",
            RuntimeWarning,
            stacklevel=3,
        )
    return True
