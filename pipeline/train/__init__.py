"""The classifier training loop: optimiser and schedule, epoch-level resume state, the fit loop."""
