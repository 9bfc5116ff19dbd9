"""``python -m isthmus.cli`` is the ``isthmus`` command."""

from isthmus.cli import main

main()
