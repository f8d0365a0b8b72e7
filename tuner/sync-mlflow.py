"""``python -m tuner.sync-mlflow``: the same command as ``python -m tuner.sync_mlflow`` (this
file name cannot be imported with ``import``; ``-m`` finds it all the same)."""
from tuner.commands.entry import run_cli
from tuner.commands.sync_mlflow import main

if __name__ == "__main__":
    run_cli(main)
