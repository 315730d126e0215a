"""Analyses of trained prompts: semantic structure of class and neighbour features."""
