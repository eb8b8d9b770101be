"""Hyperparameter search: Optuna studies whose trials are Experiments (learn_runner.tune reborn).

`StudySpec` and the search space are checked without Optuna; Optuna and TensorFlow load only
when a study is opened or a trial trains.
"""
