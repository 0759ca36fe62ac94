"""``python -m mlstrategy.cli``."""

import sys

from mlstrategy.cli import main

sys.exit(main())
