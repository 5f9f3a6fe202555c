"""Runs: accelerate, schedules, checkpoints, keys, launching."""
