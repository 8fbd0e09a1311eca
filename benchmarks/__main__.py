"""``python -m benchmarks``: run the benchmark harness (see :mod:`benchmarks.run`)."""

import sys

from benchmarks.run import main

sys.exit(main())
