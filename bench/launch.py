"""
Run a program pinned to given CPUs, with its open-files limit raised.

Usage::

    python -m bench.launch CPUS -- PROGRAM [ARGS...]

CPUS is a comma-separated list of CPU numbers, or "-" to leave the affinity
alone. The program replaces this process (exec), so the process id the
caller holds is the program's own, and every thread it starts later
inherits the affinity.
"""

import os
import resource
import sys


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft, hard


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(__doc__)
    cpus, program = argv[0], argv[2:]
    if cpus != "-":
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    raise_open_files_limit()
    os.execvp(program[0], program)  # noqa: S606 (the caller's own argument list)


if __name__ == "__main__":
    main(sys.argv[1:])
