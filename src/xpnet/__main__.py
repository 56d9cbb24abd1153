"""``python -m xpnet``: the command line."""

import sys

from xpnet.cli import main

sys.exit(main())
