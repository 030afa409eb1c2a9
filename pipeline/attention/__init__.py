"""Attention of CNN classifiers: Grad-CAM (methods.md P3) and Zagoruyko–Komodakis activation maps (P2)."""
