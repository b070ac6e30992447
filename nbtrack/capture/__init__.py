"""What nbtrack records about a run's origin. Each capture is a small function, bounded in time.

- ``system``: user, host, Python version and platform (cached per process);
- ``environment``: installed package versions and their hash (cached per process, and per set of
  installed packages in the user's cache folder);
- ``git``: commit, branch, dirty flag and a size-capped diff, from one ``git status`` (cached
  for a few seconds);
- ``entry_point``: the script, or the notebook and cell a run came from.
"""
