"""CLIP on real and synthetic pairs: data, zero-shot, training, ladders."""
