"""nbelastic: save a notebook with its live state and resume it in a fresh kernel."""

__version__ = "0.1.0"
