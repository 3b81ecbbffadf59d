"""``python -m cnnviz``: the command line (:mod:`cnnviz.cli`)."""

import sys

from cnnviz.cli import main

sys.exit(main())
