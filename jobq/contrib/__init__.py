"""Integrations with frameworks (each module imports its framework; nothing here is loaded by
``import jobq``)."""
