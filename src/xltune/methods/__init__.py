"""Tuning methods; each registers itself in METHODS by name (one module per method)."""
