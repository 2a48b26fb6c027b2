"""Provisioning over SSH with fabric: connections and (later) step kinds."""
