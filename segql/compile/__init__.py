"""From the checked AST to SQL: the plan, its lowering to sqlglot, the dialects."""
