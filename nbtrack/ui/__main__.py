"""``python -m nbtrack.ui``: the same as ``nbtrack ui``."""

import sys

from nbtrack.ui.cli import main

sys.exit(main())
