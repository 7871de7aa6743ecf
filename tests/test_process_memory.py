"""The code location fixes glibc's mmap threshold, so freed large buffers leave the process, and keeps
Python's collector off what it loaded (flightops/process_memory.py)."""

import subprocess
import sys
import textwrap

import pytest

# In a new process (the test process's allocator has its own history): free a 1 MiB block, then count
# the mappings a 512 KiB block adds. With the threshold moving, glibc has raised it to 1 MiB and serves
# 512 KiB from the heap (no mapping); with it fixed at 128 KiB, 512 KiB gets a mapping of its own.
_PROBE = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    from flightops.process_memory import fix_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = MallInfo2
    fixed = fix_mmap_threshold() if sys.argv[1] == "fixed" else None
    libc.free(libc.malloc(1 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(1 << 19)
    print(fixed, libc.mallinfo2().hblks - before)
    libc.free(block)
""")


def _probe(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.unit
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_fixed_threshold_maps_a_large_block_the_moving_one_would_keep_in_the_heap():
    assert _probe("moving") == ["None", "0"]
    assert _probe("fixed") == ["True", "1"]


def test_loading_the_code_location_fixes_the_threshold_and_freezes_what_it_loaded_once():
    counting = textwrap.dedent("""
        import gc
        import flightops.process_memory as process_memory
        calls, fix, freeze = [], process_memory.fix_mmap_threshold, process_memory.freeze_loaded_objects
        process_memory.fix_mmap_threshold = lambda *args: calls.append(fix(*args)) or calls[-1]
        process_memory.freeze_loaded_objects = lambda: calls.append("freeze") or freeze()
        import flightops.definitions
        from assets.models import flight_delay_model
        print(calls, gc.get_freeze_count() > 100_000, gc.is_tracked(flight_delay_model))
        print(any(obj is flight_delay_model for obj in gc.get_objects()))
    """)
    output = subprocess.run([sys.executable, "-c", counting], capture_output=True, text=True, check=True).stdout
    fixed = "True" if sys.platform.startswith("linux") else "False"
    # The asset definitions are among the frozen objects: no collection looks at them any more.
    assert output.splitlines()[-2:] == [f"[{fixed}, 'freeze'] True True", "False"]


# In a new process: objects alive at the call are frozen at once; those made after it, at exit (its atexit
# handler), so the interpreter's last collections skip them.
_FREEZE = textwrap.dedent("""
    import atexit, gc
    from flightops.process_memory import freeze_loaded_objects

    loaded = [[] for _ in range(20_000)]
    freeze_loaded_objects()
    frozen = gc.get_freeze_count()
    made_later = [[] for _ in range(50_000)]
    frozen_before_exit = gc.get_freeze_count()
    atexit._run_exitfuncs()
    print(frozen >= 20_000, frozen_before_exit == frozen, gc.get_freeze_count() - frozen >= 50_000)
""")


@pytest.mark.unit
def test_freeze_loaded_objects_freezes_now_and_again_at_exit():
    assert subprocess.run([sys.executable, "-c", _FREEZE], capture_output=True, text=True,
                          check=True).stdout.split() == ["True", "True", "True"]


# In a new process: 200 MB of small blocks written, all freed but the last (it keeps the heap's top, so
# glibc cannot shrink the heap by itself); the process keeps them until return_free_memory().
_HEAP = textwrap.dedent("""
    import ctypes, ctypes.util, psutil
    from flightops.process_memory import return_free_memory

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(1000) for _ in range(200_000)]
    for block in blocks:
        ctypes.memset(block, 1, 1000)
    for block in blocks[:-1]:
        libc.free(block)
    rss = lambda: psutil.Process().memory_info().rss >> 20
    held = rss()
    print(return_free_memory(), held, rss())
""")


@pytest.mark.unit
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_return_free_memory_gives_the_freed_heap_back():
    returned, before, after = subprocess.run([sys.executable, "-c", _HEAP], capture_output=True, text=True,
                                             check=True).stdout.split()
    assert returned == "True"
    assert int(before) - int(after) > 150  # of the 200 MB freed
