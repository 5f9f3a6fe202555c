"""Supervised ladders and the reference classifier."""
