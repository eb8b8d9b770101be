"""Exports: the exporters (latest, best, final), timestamped export directories and the
SavedModel writer."""
