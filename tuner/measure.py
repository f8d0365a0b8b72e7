"""``python -m tuner.measure``: runs tuner.commands.measure (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.measure import main

if __name__ == "__main__":
    run_cli(main)
