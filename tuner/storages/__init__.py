"""What a study keeps: the Optuna storage and its typed attributes, the facts stored on trials,
locks and liveness in the study's database, its prepared assets, tuning records, and the names
a study has in MLflow. Nothing here drives the trial loop (tuner.study does)."""
