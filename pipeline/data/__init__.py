"""Data: synthetic look-alikes of the official archives, archive readers, dataset builders, masks."""
