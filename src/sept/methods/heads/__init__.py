"""Heads: one file per head, discovered by file name (see sept.methods.registry)."""
