"""The ``jobq`` command: the one composition root allowed to import every component."""
