"""What reads the history: consumers, dispatch, dbt models, the report."""
