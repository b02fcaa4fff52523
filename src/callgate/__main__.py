"""``python -m callgate``: the same as the ``callgate`` command."""

from callgate.cli import main

main()
