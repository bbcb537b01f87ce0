"""Entry point: ``python run.py api|worker|simulate|demo|db|clients|token|keys|status|parking|…``.

Run by another interpreter than the project's ``.venv`` (``python3 run.py`` in a fresh clone after
``make venv``), it runs itself again with ``.venv/bin/python``, so every command of the README works
with either spelling.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def _reexec_in_venv() -> None:
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve() or not python.exists():
        return
    # Not the .venv's interpreter: its packages are not on this one's path.
    os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])  # noqa: S606


if __name__ == "__main__":
    _reexec_in_venv()
    try:
        from gateway.cli import main
    except ImportError as exc:
        print(f"error: {exc}; create the environment first: make venv", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
