"""Prompt learners: one file per learner, discovered by file name (see sept.methods.registry)."""
