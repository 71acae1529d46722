"""``python -m flowmill``: the same as the ``flowmill`` command."""

from flowmill.cli import main

main()
