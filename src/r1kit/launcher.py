"""`accelerate launch`, as `r1kit --launch` runs it, without torchrun's report of a failed process.

Every launched process says its own error (`r1kit: error: …`, one line); torchrun then logged each failure and
raised ChildFailedError, whose traceback (some 40 lines) buried that line. Here a failed process ends the launcher
with its exit code and nothing more, a process killed by a signal (which could say nothing) with one line naming
it; anything else fails as accelerate's launcher does.
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
    except ChildFailedError as failed:
        rank, first = failed.get_first_failure()
        if first.exitcode < 0:  # killed by a signal (the out-of-memory killer's SIGKILL): it could say nothing
            print(
                f"r1kit: error: launched process {rank} was killed by {first.signal_name()} (out of memory, or "
                "killed by hand?); the same command again goes on from the last complete checkpoint",
                file=sys.stderr,
            )
            return 128 - first.exitcode
        return first.exitcode  # the process said why, in its own words
    return 0


if __name__ == "__main__":
    sys.exit(main())
