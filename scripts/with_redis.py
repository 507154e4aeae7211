#!/usr/bin/env python3
"""Run a command beside a private Redis server, then stop the server.

Usage::

    python scripts/with_redis.py [--data-dir DIR] [--persist] -- CMD [ARGS...]

When REDIS_URL is set, CMD runs with the environment unchanged and no server
is started. Otherwise redis-server is started on a free port of 127.0.0.1, CMD
runs with REDIS_URL=redis://127.0.0.1:PORT/0 added to its environment, and the
server is stopped once CMD exits, whatever the reason. The exit status is
CMD's; a CMD killed by SIGHUP, SIGINT or SIGTERM ends this script with the same
signal, so that make and shells see the interruption.

Without --persist the server writes nothing to disk and every run starts
empty. With it, the server keeps an append-only file in the data directory and
starts from what the previous run left there. The data directory also holds
redis.log, the server's output, and it serves one run at a time.

Signals: the server runs in a session of its own, so a Ctrl-C typed at the
terminal reaches CMD but not the server, which is stopped only after CMD has
finished. When this script is in the terminal's foreground, CMD shares its
process group, keeps the terminal (a debugger prompt works) and gets the
terminal's signals directly; of the others only SIGTERM is passed on, to CMD
alone. Elsewhere (CI, a background job, under `timeout`), CMD gets a process
group of its own, and each SIGHUP, SIGINT, SIGQUIT and SIGTERM this script
receives is passed on to that group exactly once. Should this script be
killed outright (SIGKILL), Linux sends SIGTERM to the server and to CMD.

Standard library only, so it runs before any virtualenv exists.
"""

import argparse
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "var" / "redis"
HOST = "127.0.0.1"
READY_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)
# SIGQUIT is left out: dying of it again would dump this script's core.
RERAISED_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
# From <sys/prctl.h>; the standard library does not export it.
PR_SET_PDEATHSIG = 1
INSTALL_HINT = (
    "with_redis: redis-server is not on PATH; install it (Debian/Ubuntu: "
    "sudo apt-get install redis-server; macOS: brew install redis) "
    "or set REDIS_URL to a Redis server you run yourself"
)


class SetupError(Exception):
    """The private server could not be started; the message says why."""


def say(message: str) -> None:
    print(f"with_redis: {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split argv at the first ``--`` into options and the command to run."""
    parser = argparse.ArgumentParser(
        prog="with_redis.py",
        usage="%(prog)s [--data-dir DIR] [--persist] -- CMD [ARGS...]",
        description="Run CMD with REDIS_URL pointing at a private Redis server.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help="where the server keeps its files (default: var/redis in the repo)",
    )
    parser.add_argument(
        "--persist",
        action="store_true",
        help="keep data between runs in an append-only file in DIR",
    )

    split = argv.index("--") if "--" in argv else len(argv)
    options = parser.parse_args(argv[:split])
    command = list(argv[split + 1 :])
    if not command:
        parser.error("give the command to run after --")
    return options, command


def describe(url: str) -> str:
    """Return where a Redis URL points, without its credentials or path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"the socket {parts.path}"
    try:
        port = parts.port or 6379
    except ValueError:
        return "an address that does not parse"
    host = parts.hostname or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def exec_command(command: list[str]) -> NoReturn:
    """Replace this process with CMD, so that signals reach it untouched."""
    try:
        os.execvp(command[0], command)
    except OSError as error:
        say(f"cannot run {command[0]}: {error.strerror}")
        sys.exit(127 if isinstance(error, FileNotFoundError) else 126)


def exit_like(returncode: int) -> NoReturn:
    """Exit with CMD's status, dying of the same signal if a signal killed it."""
    if returncode < 0:
        signum = -returncode
        if signum in RERAISED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        sys.exit(128 + signum)
    sys.exit(returncode)


def in_terminal_foreground() -> bool:
    """Return whether keys typed at the controlling terminal signal this process."""
    try:
        tty = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(tty) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(tty)


def lock_data_dir(data_dir: Path) -> None:
    """Claim data_dir for this run, until this process ends however it ends.

    Two servers sharing an append-only file would corrupt it.
    """
    fd = os.open(data_dir / "with_redis.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SetupError(
            f"{data_dir} is in use by another with_redis.py run; "
            "give this one its own --data-dir"
        ) from None


def free_port() -> int:
    # The port is free now; another process could take it before the server
    # binds it, in which case the server exits and startup fails saying so.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def stop_with_parent() -> Callable[[], None] | None:
    """Return a pre-exec hook that makes Linux stop the child if this script dies.

    SIGKILL is the one death no handler here can see; without the hook it
    would leave the server, and CMD, running with nobody to stop them. The
    hook covers the child itself, not processes it starts. Elsewhere than
    Linux there is no such hook and None is returned.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def start_server(
    executable: str, data_dir: Path, port: int, *, persist: bool
) -> subprocess.Popen[bytes]:
    with (data_dir / "redis.log").open("wb") as log:
        return subprocess.Popen(
            [
                executable,
                "--bind",
                HOST,
                "--port",
                str(port),
                "--dir",
                str(data_dir),
                "--save",
                "",
                "--appendonly",
                "yes" if persist else "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Out of the terminal's reach: a Ctrl-C must not take the server
            # down while CMD is still shutting down and using it.
            start_new_session=True,
            # Safe here despite the warning in the subprocess docs: this
            # script never starts a thread.
            preexec_fn=stop_with_parent(),
        )


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def log_tail(data_dir: Path, lines: int = 5) -> str:
    try:
        text = (data_dir / "redis.log").read_text(errors="replace")
    except OSError:
        return ""
    return "".join(f"\n    {line}" for line in text.splitlines()[-lines:])


def stop_server(server: subprocess.Popen[bytes], data_dir: Path) -> None:
    """Stop the server (SIGTERM, then SIGKILL after STOP_TIMEOUT) and reap it."""
    if server.poll() is not None:
        return

    # SIGTERM makes Redis flush its append-only file before exiting.
    server.terminate()
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        say(f"redis-server ignored SIGTERM for {STOP_TIMEOUT:g} s; killing it")
        server.kill()
        server.wait()
        return
    if server.returncode not in (0, -signal.SIGTERM):
        say(
            f"redis-server failed to shut down cleanly (status "
            f"{server.returncode}); the end of its log:{log_tail(data_dir)}"
        )


class Runner:
    """Start the server, run CMD beside it, and pass signals on to CMD."""

    def __init__(self, command: list[str], *, share_terminal: bool) -> None:
        self.command = command
        self.share_terminal = share_terminal
        self.child: subprocess.Popen[bytes] | None = None
        # Signals that came before CMD existed; any of them cancels the run.
        self.early_signals: list[int] = []

    def install_handlers(self) -> None:
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self.on_signal)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.child is None:
            self.early_signals.append(signum)
        else:
            self.forward(signum)

    def forward(self, signum: int) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        if self.share_terminal:
            # Signals sent to the whole process group (terminal keys, a hang-up)
            # have reached CMD already; sending them again would make it see
            # two Ctrl-Cs and cut its own cleanup short.
            if signum == signal.SIGTERM:
                child.send_signal(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    def run(self, executable: str, data_dir: Path, *, persist: bool) -> int:
        """Return CMD's exit status, negative if a signal ended it or the run."""
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_data_dir(data_dir)
        port = free_port()

        server = start_server(executable, data_dir, port, persist=persist)
        try:
            self.wait_until_ready(server, port, data_dir)
            if self.early_signals:
                say("interrupted before the command started")
                return -self.early_signals[0]
            say(f"started a private redis-server on {HOST}:{port} (data in {data_dir})")
            returncode = self.run_command(
                {**os.environ, "REDIS_URL": f"redis://{HOST}:{port}/0"}
            )
            if server.poll() is not None:
                say(
                    f"redis-server stopped before the command did (status "
                    f"{server.returncode}); the end of its log:{log_tail(data_dir)}"
                )
            return returncode
        finally:
            stop_server(server, data_dir)

    def wait_until_ready(
        self, server: subprocess.Popen[bytes], port: int, data_dir: Path
    ) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.early_signals:
            if server.poll() is not None:
                raise SetupError(
                    f"redis-server exited with status {server.returncode} before "
                    f"answering; the end of {data_dir / 'redis.log'}:"
                    f"{log_tail(data_dir)}"
                )
            if answers_ping(port):
                return
            if time.monotonic() > deadline:
                raise SetupError(
                    f"redis-server did not answer PING on {HOST}:{port} within "
                    f"{READY_TIMEOUT:g} s; see {data_dir / 'redis.log'}"
                )
            time.sleep(0.05)

    def run_command(self, env: dict[str, str]) -> int:
        try:
            self.child = subprocess.Popen(
                self.command,
                env=env,
                process_group=None if self.share_terminal else 0,
                preexec_fn=stop_with_parent(),
            )
        except OSError as error:
            say(f"cannot run {self.command[0]}: {error.strerror}")
            return 127 if isinstance(error, FileNotFoundError) else 126

        # A signal caught while Popen was starting CMD found no child to go to.
        for signum in self.early_signals:
            self.forward(signum)
        return self.child.wait()


def main(argv: Sequence[str]) -> NoReturn:
    options, command = parse_args(argv)

    url = os.environ.get("REDIS_URL")
    if url:
        say(f"using the Redis server at {describe(url)} given by REDIS_URL")
        exec_command(command)

    executable = shutil.which("redis-server")
    if executable is None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(1)

    runner = Runner(command, share_terminal=in_terminal_foreground())
    runner.install_handlers()
    try:
        returncode = runner.run(
            executable, options.data_dir.resolve(), persist=options.persist
        )
    except (OSError, SetupError) as error:
        say(str(error))
        sys.exit(1)
    exit_like(returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
