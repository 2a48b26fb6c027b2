"""Step kinds, one module each; :mod:`labkit.provision.steps` holds the registry."""
