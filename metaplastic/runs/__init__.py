"""The run store: run folders, config and CSV records, checkpoints, the one-writer lock,
forgetting measures, and the command-line conventions every run shares."""
