"""Evaluation bookkeeping: the results files, what trainers and evaluators tell each other
through the model dir, continuous evaluation, early stopping across processes, and which
checkpoints a waiting sensor or trigger must report."""
