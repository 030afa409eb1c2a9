"""Robust accuracy, confidence intervals and the gradient-masking audit."""
