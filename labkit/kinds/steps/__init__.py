"""Step kinds, one module each; :mod:`labkit.kinds.compile` holds the registry."""
