"""From raw trials to one row per notebook: ratios with their spread, and the facts behind them.

Every ratio is nbelastic / baseline, computed per repeat and then summarised by its median, so
a below-one figure means nbelastic wins. The spread is the min-max range over the repeats; this
machine is shared, and a ratio whose spread crosses one is not a result either way.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.measure import Trial


@dataclass(frozen=True)
class Figure:
    """A median over repeats with the range it came from."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        return cls(statistics.median(values), min(values), max(values))

    @property
    def spread(self) -> float:
        """Half the min-max range, relative to the median (0.05 means +-5%)."""
        return (self.high - self.low) / 2 / self.median if self.median else 0.0


@dataclass
class Row:
    """Everything reported about one notebook."""

    name: str
    repeats: int
    ratios: dict[str, Figure | None]  # keyed by RATIOS; None when the baseline failed
    typical: dict[str, Trial | None]  # keyed by RATIOS: the repeat at that ratio's median
    absolute: dict[str, Figure | None]  # keyed by ABSOLUTE
    migration_baseline: str  # "dill", or "rerun" when dill could not dump the state
    dill_failures: int
    dill_error: str | None
    verified: int  # in the worst repeat
    total: int
    problems: dict[str, object]  # what did not come back as saved (worst repeat), by kind
    worst: Trial  # the repeat that verified fewest variables


RATIOS = {
    "save_time": "save time / dill",
    "save_bytes": "save bytes / dill",
    "restore_dill": "restore / dill",
    "restore_rerun": "restore / rerun",
    "migration": "migration / dill",
    "run_time": "run time / no ext",
    "peak_rss": "peak RSS / no ext",
    "incremental_bytes": "incr. bytes / 1st",
    "incremental_time": "incr. time / 1st",
}

ABSOLUTE = {
    "plain_seconds": ("run (s)", 1.0),
    "run_seconds": ("run+ext (s)", 1.0),
    "save_seconds": ("save (s)", 1.0),
    "dill_seconds": ("dill dump (s)", 1.0),
    "save_bytes": ("save (MB)", 1e-6),
    "dill_bytes": ("dill (MB)", 1e-6),
    "restore_seconds": ("restore (s)", 1.0),
    "dill_load_seconds": ("dill load (s)", 1.0),
    "plain_peak_rss": ("peak RSS (MB)", 1 / 1024),
    "peak_rss": ("peak RSS+ext (MB)", 1 / 1024),
}


def migration_seconds(
    seconds_out: float, size: float, seconds_in: float, bandwidth: float
) -> float:
    """Save, move the bytes at ``bandwidth``, load: the end-to-end cost of moving a session."""
    return seconds_out + size / bandwidth + seconds_in


# What a restore report lists about variables that did not come back exactly as saved.
PROBLEMS = ("mismatched", "unverifiable", "lost", "not_loaded", "rebuilt", "failed_cells")


def summarise(name: str, trials: Sequence[Trial], bandwidth: float) -> Row:
    """One row from the repeats of one workload."""
    dumped = [t for t in trials if t.dill_error is None]
    dill_ok = len(dumped) == len(trials)

    def nbelastic_migration(t: Trial) -> float:
        return migration_seconds(t.save_seconds, t.save_bytes, t.restore_seconds, bandwidth)

    def dill_migration(t: Trial) -> float:
        return migration_seconds(t.dill_seconds, t.dill_bytes, t.dill_load_seconds, bandwidth)

    migration_baseline = dill_migration if dill_ok else (lambda t: t.plain_seconds)
    measures: dict[str, tuple[Callable[[Trial], float], Sequence[Trial]]] = {
        "save_time": (lambda t: t.save_seconds / t.dill_seconds, dumped),
        "save_bytes": (lambda t: t.save_bytes / t.dill_bytes, dumped),
        "restore_dill": (lambda t: t.restore_seconds / t.dill_load_seconds, dumped),
        "restore_rerun": (lambda t: t.restore_seconds / t.plain_seconds, trials),
        "migration": (lambda t: nbelastic_migration(t) / migration_baseline(t), trials),
        "run_time": (lambda t: t.run_seconds / t.unwatched_seconds, trials),
        # Not columns of their own: shown against the target only.
        "hook_time": (lambda t: 1 + t.monitor_seconds / t.unwatched_seconds, trials),
        "noise_floor": (lambda t: t.twin_seconds / t.plain_seconds, trials),
        "peak_rss": (lambda t: t.peak_rss / t.plain_peak_rss, trials),
        "incremental_bytes": (lambda t: t.incremental_bytes / t.save_bytes, trials),
        "incremental_time": (lambda t: t.incremental_seconds / t.save_seconds, trials),
    }
    absolute = {
        key: _median_of(lambda t, key=key, scale=scale: _scaled(getattr(t, key), scale), trials)
        for key, (_, scale) in ABSOLUTE.items()
    }
    worst = min(trials, key=lambda t: (len(t.restore["verified"]), -len(t.restore["mismatched"])))
    report = worst.restore
    counted = ("verified", "unverifiable", "mismatched", "lost", "not_loaded")
    return Row(
        name=name,
        repeats=len(trials),
        ratios={key: _median_of(*measure) for key, measure in measures.items()},
        typical={key: _at_median(*measure) for key, measure in measures.items()},
        absolute=absolute,
        migration_baseline="dill" if dill_ok else "rerun",
        dill_failures=len(trials) - len(dumped),
        dill_error=next((t.dill_error for t in trials if t.dill_error), None),
        verified=len(report["verified"]),
        total=sum(len(report.get(key, ())) for key in counted),
        problems={key: report[key] for key in PROBLEMS if report.get(key)},
        worst=worst,
    )


def _median_of(pick: Callable[[Trial], float | None], among: Sequence[Trial]) -> Figure | None:
    values = [v for v in map(pick, among) if v is not None]
    return Figure.of(values) if values else None


def _at_median(pick: Callable[[Trial], float], among: Sequence[Trial]) -> Trial | None:
    """The repeat whose value is the median (the lower middle one for an even count)."""
    ranked = sorted(range(len(among)), key=lambda index: pick(among[index]))
    return among[ranked[(len(ranked) - 1) // 2]] if ranked else None


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale
