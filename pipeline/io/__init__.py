"""Files in and out: downloads, safe archive reading, atomic writes."""
