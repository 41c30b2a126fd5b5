"""Questions asked of a project: members, one person, explain, preview, stats."""
