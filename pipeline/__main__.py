"""`python -m pipeline` is the `postmortem` command."""

from pipeline.cli import main

main()
