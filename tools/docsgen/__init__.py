"""Generators of the documentation site's reference pages (``python -m tools.docsgen``)."""
