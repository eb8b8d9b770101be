"""Example experiments that run as they are, on data shipped with the package."""
