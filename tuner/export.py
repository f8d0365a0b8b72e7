"""``python -m tuner.export``: runs tuner.commands.export (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.export import main

if __name__ == "__main__":
    run_cli(main)
