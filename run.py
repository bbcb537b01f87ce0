"""Entry point: ``python run.py api|worker|simulate|demo|db|clients|token|keys``."""

import sys

from gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
