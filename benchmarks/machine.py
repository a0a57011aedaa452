"""Describe the machine a run happened on, so that its ratios can be compared with another's."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PACKAGES = (
    "nbelastic",
    "dill",
    "ipykernel",
    "ipython",
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "matplotlib",
)


def load() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was with other work."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def describe(load_at_start: str, fresh_memory: str) -> dict[str, str]:
    """CPU, memory, OS, Python, the load around the run, and the versions that matter."""
    facts = {
        "CPUs": f"{os.cpu_count()} ({_cpu_model() or platform.machine()})",
        "RAM": _memory(),
        "OS": platform.platform(),
        "Python": f"{sys.version.split()[0]} ({sys.executable})",
        "load average (1/5/15 min)": f"{load_at_start} at the start, {load()} at the end",
        "code measured": code_measured(),
        "write watch": write_watch(),
        "fresh memory": fresh_memory,
    }
    for package in PACKAGES:
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    return facts


def first_touch() -> str:
    """What writing fresh memory costs, the first time and again right after it was freed.

    On a virtual machine whose host backs guest memory lazily (and takes freed memory back
    within seconds), a kernel that gets never-touched pages pays several times more for the
    same cell: that, more than anything nbelastic does, is the noise of the run-time ratio.
    """
    size = 256 << 20
    seconds = []
    for _ in range(2):
        area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        cell = ctypes.c_char.from_buffer(area)
        started = time.perf_counter()
        ctypes.memset(ctypes.addressof(cell), 1, size)
        seconds.append(time.perf_counter() - started)
        del cell
        area.close()
    first, again = (value * 1000 for value in seconds)
    return f"256 MiB written in {first:.0f} ms the first time, {again:.0f} ms right after"


def write_watch() -> str:
    """Whether the monitor's write watch works here, and what one fault on a watched page
    costs: a 64 MiB array written whole while watched, then again unwatched."""
    import numpy as np

    from nbelastic.writewatch import WriteWatch

    watch, note = WriteWatch.open_reporting()
    if watch is None:
        return note
    pages = 16384
    array = np.ones(pages * mmap.PAGESIZE // 8)
    try:
        watch.fingerprint(array)
        started = time.perf_counter()
        array += 1
        watched = time.perf_counter() - started
        started = time.perf_counter()
        array += 1
        unwatched = time.perf_counter() - started
    finally:
        watch.close()
    per_page = max(0.0, watched - unwatched) / pages
    return f"{note}; a watched page written costs {per_page * 1e6:.2f} µs once (a fault)"


def code_measured() -> str:
    """The commit of this checkout, and whether nbelastic or the benchmarks differ from it."""
    try:
        commit = _git("rev-parse", "HEAD")
        changed = _git(
            "--no-optional-locks", "status", "--porcelain", "--", "nbelastic", "benchmarks"
        )
    except (OSError, subprocess.CalledProcessError):
        return f"{ROOT} (not a git checkout)"
    if changed:
        return f"commit {commit} with uncommitted changes to {len(changed.splitlines())} file(s)"
    return f"commit {commit}"


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _memory() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "unknown"
    return f"{total / 2**30:.1f} GiB"
