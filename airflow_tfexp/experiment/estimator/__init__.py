"""The parts of `KerasEstimator`: the model state and its compiled loops, the training loop, the
distribution strategy, how steps run (locally or coordinated), extra evaluation metrics and the
checkpoint manager that spares what evaluators still need."""
