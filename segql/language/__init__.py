"""The rule language: text to tokens to a checked AST, and back to text."""
