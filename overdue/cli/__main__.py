"""``python -m overdue.cli``, as before the command line became a package."""

from overdue.cli import main

main()
