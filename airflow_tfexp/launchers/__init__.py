"""Where a training step runs: in the task's own process, or as a multi-worker job on Ray."""
