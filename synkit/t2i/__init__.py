"""synkit's own text-to-image families, trained on a world's web split."""
