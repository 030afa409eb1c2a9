"""Adversarial attacks in pixel space ([0, 1]), one per file on the shared `Attack` base."""
