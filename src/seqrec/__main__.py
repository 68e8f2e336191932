"""``python -m seqrec``: the same as the ``seqrec`` command."""

import sys

from seqrec.cli import main

sys.exit(main())
