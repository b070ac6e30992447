"""``python -m nbtrack.cli``: the ``nbtrack`` command."""

import sys

from nbtrack.cli import main

sys.exit(main())
