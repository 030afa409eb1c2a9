"""Classifiers (a block structure shared by every architecture), wrappers and checkpoints."""
