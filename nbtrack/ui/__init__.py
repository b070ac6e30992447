"""``nbtrack ui``: the compare and registry dashboards in a browser tab, with nothing to write.

Voilà serves the dashboard notebook shipped here (``dashboard.ipynb``) from a kernel of this very
Python; ``launch`` starts and stops it, ``page`` builds what the notebook shows.
"""
