"""``python -m rlsizer``: the same as the ``rlsizer`` console script."""

import sys

from rlsizer.cli import main

sys.exit(main())
