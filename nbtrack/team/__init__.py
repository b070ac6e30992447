"""Setting up a team store: the DuckLake catalog, the three roles, their grants, and people.

``nbtrack team init URI`` (``init.init_team``) and ``nbtrack team grant USER ROLE``
(``init.grant``), run by the team's PostgreSQL admin. What each role may do, and how PostgreSQL
enforces it, is in ``roles`` and docs/team-store.md.
"""
