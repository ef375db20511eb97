"""`python -m zoo`: the `zoo` command, from whichever Python runs it."""

import sys

from zoo.cli import main

sys.exit(main())
