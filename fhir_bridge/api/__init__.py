"""HTTP interfaces: the internal JSON API (/api/v1) and health."""
