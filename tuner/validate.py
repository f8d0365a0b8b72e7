"""``python -m tuner.validate``: runs tuner.commands.validate (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.validate import main

if __name__ == "__main__":
    run_cli(main)
