"""Regularizers: one file per regularizer, discovered by file name (see sept.methods.registry)."""
