"""Integrations with frameworks and databases, each in a package of its own, each imported only
by the applications that use it (their dependencies are extras: ``jobq[django]``,
``jobq[outbox]``)."""
