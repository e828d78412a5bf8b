"""`python -m arc_halo.cli`, the same as `arc-halo`."""

from arc_halo.cli import main

main()
