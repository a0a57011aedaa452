"""Benchmarks: nbelastic against what a user would do instead, measured side by side.

For each workload notebook (``benchmarks/notebooks``) one run measures, with real kernels:
save and restore against ``dill.dump_module``/``load_module`` and against re-running every
cell, end-to-end migration at a set bandwidth, the monitor's run-time and memory overhead, an
incremental second save, and how many variables a restore verified. Apart from the notebooks,
``trivial_cell`` times single cells with about 2 GB of state alive, against a twin kernel
without the extension. ``python -m benchmarks`` prints the tables and writes
``docs/benchmarks.md`` and ``docs/benchmarks.png``; ``--quick`` runs reduced sizes elsewhere,
for the smoke test.
"""
