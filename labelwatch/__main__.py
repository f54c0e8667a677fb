"""``python -m labelwatch`` is the ``labelwatch`` command."""

import sys

from labelwatch.cli import main

sys.exit(main())
