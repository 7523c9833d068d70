"""A throwaway PostgreSQL cluster that a test can stop, start, pause and resume.

``initdb`` in a fresh temporary directory, a postmaster on its own free port (TCP on
127.0.0.1 and a Unix socket in the same directory), torn down — resumed if paused, stopped
``-m immediate``, the directory removed — however the block ends. Nothing here touches any
other cluster: signals go only to this cluster's postmaster (read from its own
``postmaster.pid``) and that postmaster's children.

The tests run as root, and PostgreSQL refuses to; ``initdb`` and ``pg_ctl`` run as the
``postgres`` user (``runuser``) when we are root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian layout), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayCluster:
    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = port
        self.paused: list[int] = []

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=50 -c shared_buffers=16MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop at once (``-m immediate``): connections are refused from here on."""
        self.resume()
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(pid_file.read_text().splitlines()[0])
        return None

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, walwriter …)."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return []
        pids = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # the command may contain spaces: the fields after ")" are fixed
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if ppid == postmaster:
                    pids.append(int(stat.parent.name))
        return pids

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: connections are accepted by the
        kernel but nothing answers (a hung database)."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self.paused.append(pid)

    def resume(self) -> None:
        for pid in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused.clear()

    def destroy(self) -> None:
        self.stop()
        postmaster = self.postmaster_pid()
        if postmaster is not None:  # pg_ctl could not stop it: make sure it is gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
            time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster(bin_dir: Path) -> Iterator[ThrowawayCluster]:
    """A running cluster of its own; gone when the block ends, however it ends."""
    root = Path(tempfile.mkdtemp(prefix="callmeter-pg-"))
    cluster = ThrowawayCluster(bin_dir, root, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
