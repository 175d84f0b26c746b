"""Config schema (being written)."""
