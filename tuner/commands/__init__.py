"""The command-line commands, one module each (its ``main(argv) -> int`` and parser):
``python -m tuner.<command>`` runs it through the entry module of the same name at the package
root, ``tuner <command>`` through tuner.commands.dispatch. What they share: the option groups
and the one way to open a study (options), one-line usage errors and exit codes (entry)."""
