"""Ways into a project: templates, rule import, the demo warehouse."""
