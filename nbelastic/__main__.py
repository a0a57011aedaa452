"""``python -m nbelastic``: the same as the ``nbelastic`` command."""

from nbelastic.cli import main

main()
