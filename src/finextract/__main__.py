"""``python -m finextract`` is the same as the ``finextract`` command."""

from finextract.cli import main

main()
