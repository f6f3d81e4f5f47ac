"""Speech datasets: the canonical manifest, importers, validation, quality, splits."""
