"""Worlds, WordNet, captions and prompt sets: what a study draws from."""
