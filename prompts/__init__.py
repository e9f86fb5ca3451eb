"""Versioned prompt templates and the parsers of their structured outputs."""
