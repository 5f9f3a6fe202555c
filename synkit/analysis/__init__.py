"""Scaling fits, per-class analysis, charts, findings and the report."""
