"""``python -m tuner.search``: runs tuner.commands.search (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.search import main

if __name__ == "__main__":
    run_cli(main)
