"""attnrobust: how attention makes vision models more or less robust to adversarial attacks."""
