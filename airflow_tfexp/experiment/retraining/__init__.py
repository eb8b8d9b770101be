"""Retraining: warm start from an earlier model, the blessing gate, publishing a blessed export
and the run's lineage record."""
