"""The assignment's one source, and the reference notebook and student template built from it."""
