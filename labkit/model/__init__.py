"""The scenario as data: pydantic models, YAML with line numbers, validation. Imports nothing of labkit above it."""
