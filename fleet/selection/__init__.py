"""Choosing the winner among a deliberation's candidates: probe runs, behaviour groups, selectors."""
