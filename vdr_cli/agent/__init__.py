"""The research loop: prompt, turn parsing, tool dispatch, budgets, resume."""
