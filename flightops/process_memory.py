"""The run process's memory housekeeping: glibc malloc's mmap threshold fixed, its heap trimmed, and
Python's collector kept off the objects loaded with the code location.

glibc serves a block larger than its mmap threshold (128 KiB at start) with a mapping of its own,
returned to the system when freed. But each time such a block is freed, glibc raises the threshold
to that block's size (up to 32 MiB), and blocks below it then come from the heap, where a freed block
stays in the process while anything allocated after it lives above. A run's process frees large
buffers all day: DuckDB results converted to pandas, scikit-learn's and CatBoost's arrays. Steps
then start on memory earlier steps no longer use. In a year's run (`make bench`, one run each), the
training step peaked at 1,224 MB with the moving threshold and at 1,059 MB with it fixed at 128 KiB; the
run took 83.3 and 81.4 s. CatBoost's fit alone took the same time either way (19.1-19.9 s over six runs).

`mallopt(M_MMAP_THRESHOLD, ...)` fixes the threshold (glibc then stops moving it) for the rest of the
process. It is called where a process loads the code location (flightops/definitions.py), so every
process that runs steps has it. Elsewhere than glibc (macOS, musl), there is nothing to do.

Blocks below the threshold still come from the heap, and glibc keeps the free ones. `return_free_memory`
hands them back (`malloc_trim`): the training step calls it once its rows are gone, since every later step
of the run would otherwise stand on what training left (assets/models.py).

Python's collector traverses every container object it tracks at each full collection: about 320,000
once the code location is loaded (Dagster, dbt's manifest, pandas), which live as long as the process,
and more once a run's steps have imported dbt, MLflow and CatBoost. `freeze_loaded_objects`, called
where the code location has loaded, moves those of the code location out of its reach (`gc.freeze`),
and at exit every object, where the interpreter otherwise collects several times over the whole heap
before it ends. A new day's run after a year, in a process of its own: full collections took 1.47 s
during the run and 1.8 s at exit, 0.97 s and 0.03 s with both. Objects still alive at exit are freed
with the process, not by the collector: nothing of the platform waits for that (connections and files
are closed by their `with` blocks; `weakref.finalize` callbacks run at exit on their own).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import gc

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting threshold


def _libc_function(name: str):
    """glibc's function `name`, or None where the C library has none (not glibc)."""
    libc_name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc_name), name, None) if libc_name else None


def return_free_memory() -> bool:
    """Collect Python's garbage, then give the free memory of glibc's heaps back to the system (malloc_trim).

    True if glibc was asked (and had memory to give back)."""
    gc.collect()
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim(0) == 1


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold_bytes`; True if glibc took it, False where there is no glibc."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold_bytes) == 1


def freeze_loaded_objects() -> None:
    """Keep the objects alive now out of every later collection, and every object out of those at exit."""
    gc.freeze()
    atexit.register(gc.freeze)
