"""Rendering prompt sets into shards of images."""
