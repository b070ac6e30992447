"""Notebooks run under nbval write to a throwaway store, not to notebooks/.nbtrack."""

import os
import tempfile

# Set at import, before nbval starts any kernel: kernels inherit the environment.
os.environ.setdefault("NBTRACK_TRACKING_URI", tempfile.mkdtemp(prefix="nbtrack-notebooks-"))
