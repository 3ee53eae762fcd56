"""A read-only web UI: the catalog, freshness, validation, skew reports and online lookups.

Served by the feature server at ``/ui`` (``featurestore serve``) or alone (``featurestore
ui``); see docs/ui.md. Needs the ``serve`` extra; ``import featurestore`` never imports it.
"""
