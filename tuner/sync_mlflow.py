"""``python -m tuner.sync_mlflow``: runs tuner.commands.sync_mlflow (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.sync_mlflow import main

if __name__ == "__main__":
    run_cli(main)
