"""``python -m sync`` runs the command line."""

from .cli import main

main()
