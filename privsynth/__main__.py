"""``python -m privsynth`` runs the command line."""

from privsynth.cli import main

if __name__ == "__main__":  # not when a worker process imports this module as __mp_main__
    main()
