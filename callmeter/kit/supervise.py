"""`callmeter serve --workers N`: N API processes on one port, and the meter.

The parent binds the port N times, each a listening socket of its own with
``SO_REUSEPORT`` (Linux), and hands one to each of N children, a plain
`callmeter serve --fd … --no-meter` (so every API process runs exactly the code a single
one does, request limits included). The kernel spreads new connections evenly over the
sockets by their addresses; with one shared socket it wakes whichever process is already
awake, so the busiest one took most of them (measured: one process at 75 % of a core, the
other at 7 %, while 10,000 event streams opened). A child being started again finds its
socket's connections waiting in the backlog. Without ``SO_REUSEPORT`` (not Linux) the
children share one socket. A second supervisor on the same port is refused (a lock
held while this one runs), since SO_REUSEPORT would let it bind. Unless told otherwise
it also starts one `callmeter worker`, the only meter. A child that dies is started
again (after a pause if it keeps dying); SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PR_SET_PDEATHSIG = 1
_LINUX = sys.platform.startswith("linux")
RESTART_PAUSE_SECONDS = 1.0
STOP_GRACE_SECONDS = 10.0


@dataclass
class _Child:
    name: str
    command: list[str]
    pass_fds: tuple[int, ...]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = field(default=0.0)

    def start(self) -> None:
        # A session of its own: Ctrl-C in a terminal reaches the supervisor only, which then
        # stops each child once (a second signal would make uvicorn cut requests short).
        self.process = subprocess.Popen(  # noqa: S603 - our own command, no shell
            self.command,
            pass_fds=self.pass_fds,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only prctl, before exec
        )
        self.started_at = time.monotonic()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, however it dies (Linux
    prctl PR_SET_PDEATHSIG; elsewhere nothing), so no API process outlives it holding the
    port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` that the kernel balances new
    connections over (``SO_REUSEPORT``), or one where that is not available. Port 0 (any
    free port) is taken once and the others bound to the same."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Linux only: it balances connections over the sockets, and _port_lock guards it there
    reuse_port = getattr(socket, "SO_REUSEPORT", None) if _LINUX else None
    sockets: list[socket.socket] = []
    try:
        for _ in range(count if reuse_port is not None else 1):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port is not None:
                sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class PortHeld(OSError):
    """Another supervisor serves this port."""


def _port_lock(port: int) -> socket.socket | None:
    """Held while this supervisor serves ``port`` (on any address): SO_REUSEPORT would let
    a second supervisor (same user) bind the port too and quietly take half its
    connections. A name in Linux's abstract socket namespace is freed when its holder
    dies, however it dies. Elsewhere there is no such lock, and no SO_REUSEPORT to guard
    (the children share one socket: a second supervisor's bind fails)."""
    if not _LINUX:
        return None
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0callmeter-serve:{port}")
    except OSError as error:
        lock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortHeld(error.errno, "another callmeter serve holds it") from error
        raise
    return lock


def _bind(host: str, port: int, workers: int) -> tuple[list[socket.socket], socket.socket | None]:
    """The listening sockets and the port's lock (taken first; for port 0, on the port the
    kernel chose); OSError, with nothing left open, when either cannot be had."""
    with contextlib.ExitStack() as held:
        lock = _port_lock(port) if port else None
        if lock is not None:
            held.callback(lock.close)
        sockets = _listening_sockets(host, port, workers)  # closes its own on failure
        for sock in sockets:
            held.callback(sock.close)
        if not port and (lock := _port_lock(sockets[0].getsockname()[1])) is not None:
            held.callback(lock.close)
        held.pop_all()
    return sockets, lock


def supervise(
    host: str,
    port: int,
    *,
    workers: int,
    meter: bool,
    listening: Callable[[int], None] | None = None,
) -> int:
    """Run the children until SIGINT/SIGTERM; returns the exit code (1 when ``host:port``
    cannot be listened on, e.g. another supervisor serves it). ``listening`` is told the
    port once it is bound, before the children start."""
    try:
        sockets, lock = _bind(host, port, workers)
    except OSError as error:
        reason = error.strerror if isinstance(error, PortHeld) else error
        print(f"cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    if listening is not None:
        listening(sockets[0].getsockname()[1])
    command = [sys.executable, "-m", "callmeter"]
    fds = [sockets[n % len(sockets)].fileno() for n in range(workers)]
    children = [
        _Child(f"api-{n + 1}", [*command, "serve", "--fd", str(fd), "--no-meter"], (fd,))
        for n, fd in enumerate(fds)
    ]
    if meter:
        children.append(_Child("meter", [*command, "worker"], ()))
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.start()
    try:
        while not stopping:
            time.sleep(0.2)
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None or stopping:
                    continue
                print(f"{child.name} exited with {code}; starting it again", file=sys.stderr)
                if time.monotonic() - child.started_at < RESTART_PAUSE_SECONDS * 5:
                    time.sleep(RESTART_PAUSE_SECONDS)
                child.start()
    finally:
        for child in children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        for sock in sockets:
            sock.close()
        if lock is not None:
            lock.close()
    return 0
