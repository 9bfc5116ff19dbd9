"""``python -m isthmus.cli`` is the ``isthmus`` command, exit status included."""

import sys

from isthmus.cli import main

sys.exit(main())
