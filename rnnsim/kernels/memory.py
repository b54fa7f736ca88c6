"""Keep freed memory in the process for the next kernel call instead of returning it to the OS.

A kernel call allocates its state and gradient arrays afresh (tens of MB for T*B*n states), and
glibc's malloc serves large blocks with ``mmap`` and unmaps them on ``free``. Every call then
faults in every page again, and on a virtual machine a page fault costs microseconds: for an RNN
with n = 256, B = 32, T = 200 that was a fifth of the whole forward and backward pass, and for a
deep MLP more than half. Raising glibc's mmap and trim thresholds makes ``free`` keep such blocks
for the next ``malloc``. The cost is a resident size that stays at its peak.

Settings that the user gives through glibc's own environment variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``) win; ``RNNSIM_KEEP_MEMORY=0`` turns this off.
"""

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 28  # blocks up to 256 MiB come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free memory at the top of the heap


def keep_freed_memory():
    """Set glibc's mmap and trim thresholds (see the module docstring).

    Returns
    -------
    bool
        True when the thresholds were set; False on other C libraries, when the user has set
        glibc's variables, or when ``RNNSIM_KEEP_MEMORY=0``.
    """
    if os.environ.get("RNNSIM_KEEP_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
