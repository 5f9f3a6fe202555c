"""Below everything: atomic files, progress lines, run records, precision, hub loading."""
