"""``python -m bridge`` is the same as the ``powerbridge`` command."""

import sys

from bridge.cli import main

sys.exit(main())
