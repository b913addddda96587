"""Scoring: deterministic checks, an LLM judge, ranking and top-k selection."""
