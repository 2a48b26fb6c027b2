"""Step and check kinds (one module each), their diagnoses and guides, and compiling a scenario for its nodes."""
