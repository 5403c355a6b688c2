"""``python -m privsynth`` runs the command line."""

from privsynth.cli import main

main()
