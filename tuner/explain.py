"""``python -m tuner.explain``: runs tuner.commands.explain (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.explain import main

if __name__ == "__main__":
    run_cli(main)
