"""Check kinds, one module each; :mod:`labkit.checks` holds the registry."""
