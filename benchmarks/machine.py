"""Describe the machine a run happened on, so that its ratios can be compared with another's."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

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


def describe() -> dict[str, str]:
    """CPU, memory, OS, Python and the versions of the packages the workloads exercise."""
    facts = {
        "CPUs": f"{os.cpu_count()} ({_cpu_model() or platform.machine()})",
        "RAM": _memory(),
        "OS": platform.platform(),
        "Python": f"{sys.version.split()[0]} ({sys.executable})",
    }
    for package in PACKAGES:
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    return facts


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
