"""The `vdr` entry point: as little as possible before the command is known.

For `vdr crop IMAGE` the image starts decoding on a thread before typer and
the commands are imported (see tools/prefetch.py); everything else goes
straight to `main`.
"""

from __future__ import annotations

import sys


def run() -> None:
    from vdr_cli.tools import prefetch

    target = prefetch.crop_target(sys.argv)
    if target is not None:
        prefetch.start(target)
    from vdr_cli.cli.main import run as main_run

    main_run()
