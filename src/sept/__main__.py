"""``python -m sept`` runs the command line."""

import sys

from sept.cli.main import main

sys.exit(main())
