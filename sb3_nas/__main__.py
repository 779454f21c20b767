"""``python -m sb3_nas COMMAND …``: the same as the ``sb3-nas`` console script."""

import sys

from sb3_nas.cli import main

sys.exit(main())
