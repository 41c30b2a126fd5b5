"""A run: evaluate, diff against the recorded members, commit; segql's own tables."""
