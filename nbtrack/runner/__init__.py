"""Running work headless: ``nbtrack run`` (a notebook with parameters) and ``nbtrack demo``."""
