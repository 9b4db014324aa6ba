"""`python -m legato` runs the CLI."""

from legato.cli import main

main()
