"""``python -m coord_client.cli``: the same as the ``coordctl`` command."""

import sys

from . import main

sys.exit(main())
