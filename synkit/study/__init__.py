"""Parameters, checks, running notebooks, the command line."""
