"""Document families beyond judgments and orders, one module each: its types as :class:`DocumentType`
entries (``TYPES``) and its pure rules. ``gateway/domain/registry.py`` collects them."""
