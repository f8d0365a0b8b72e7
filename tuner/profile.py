"""``python -m tuner.profile``: runs tuner.commands.profile (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.profile import main

if __name__ == "__main__":
    run_cli(main)
