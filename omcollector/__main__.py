"""`python -m omcollector`: the same as the omcollector script (used by a unit when no script is installed)."""

import sys

from omcollector.app import main

sys.exit(main())
