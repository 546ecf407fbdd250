"""`accelerate launch`, as `r1kit --launch` runs it, without torchrun's report of a failed process.

Every launched process says its own error (`r1kit: error: …`, one line); torchrun then logged each failure and
raised ChildFailedError, whose traceback (some 40 lines) buried that line. Here a failed process ends the launcher
with its exit code and nothing more; anything else fails as accelerate's launcher does.
"""

from __future__ import annotations

import logging
import sys

from accelerate.commands.launch import launch_command, launch_command_parser
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError


def main() -> int:
    args = launch_command_parser().parse_args()
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # "failed (exitcode: 1) local_rank…"
    try:
        launch_command(args)
    except ChildFailedError as failed:  # the process said why, in its own words
        _, first = failed.get_first_failure()
        return first.exitcode if first.exitcode > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
