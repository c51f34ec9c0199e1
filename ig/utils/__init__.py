"""Small shared helpers: atomic file output, safe loading, seeds, progress."""
