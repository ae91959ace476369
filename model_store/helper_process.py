"""A helper process: ``python -m MODULE`` with its settings on stdin and a framed pipe each way.

Both sides run one: the trainer's Kafka fetcher (``stream.fetcher``) and a replica's
prediction log producer (``api.prediction_log_producer``). A fresh interpreter, not a
multiprocessing child: it does not import the parent's ``__main__`` again (whatever script
embeds a trainer or an app), nothing of the parent's threads or locks comes along, and it
imports only its module.

- **Settings on stdin**, pickled, never in argv (where ``ps`` and /proc show them to every
  user): they may carry Kafka credentials.
- **Two channels**, parent to child and child to parent: each an ``os.pipe`` with
  ``multiprocessing.connection.Connection`` framing (``send``/``recv`` pickle,
  ``send_bytes``/``recv_bytes`` do not), each widened on request (``F_SETPIPE_SZ``, up to the
  system's maximum): the pipe's buffer is what may wait in flight before the writer blocks.
- **Stopping**: the parent closes its ends (a child reading sees EOF, one writing a broken
  pipe), sends SIGTERM, waits, then kills, and reaps. The child ignores SIGINT (Ctrl-C
  reaches the whole process group; the parent decides) and turns SIGTERM into a flag that
  ``HelperChild.running`` reports, so it ends its work cleanly; ``STOP_GRACE_SECONDS`` after
  a SIGTERM, SIGALRM ends it even if it never looks at the flag.
- **Parent death**, even by SIGKILL: ``running`` is false once the parent's pid is no longer
  the child's parent, and on Linux the child asks for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``). Linux sends that signal when the *thread* that started the child
  ends, so start a helper from the thread that owns it for as long as it runs.

The same death signal guards the trainer's forked checkpoint writer (stream/forked_child.py)
and ``train --all``'s workers (stream/fleet.py).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

STOP_GRACE_SECONDS = 5
_PR_SET_PDEATHSIG = 1


class _Framed:
    """Either end's two channels: frames out on ``_outbox``, in from ``_inbox``."""

    _inbox: Connection
    _outbox: Connection

    def send(self, obj: object) -> None:
        """Pickle ``obj`` to the other side; OSError (broken pipe) once it is gone."""
        self._outbox.send(obj)

    def send_bytes(self, data: bytes) -> None:
        self._outbox.send_bytes(data)

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a frame (or the other side's end: EOF) can be read within ``timeout`` seconds."""
        return self._inbox.poll(timeout)

    def recv(self) -> object:
        """The next frame the other side sent, unpickled; EOFError once it ended."""
        return self._inbox.recv()

    def recv_bytes(self) -> bytes:
        return self._inbox.recv_bytes()


class HelperProcess(_Framed):
    """The parent's side: the running ``python -m MODULE`` and its two channels."""

    def __init__(self, process: subprocess.Popen, to_child: Connection, from_child: Connection) -> None:
        self._process = process
        self._outbox = to_child
        self._inbox = from_child

    @classmethod
    def start(
        cls, module: str, settings: object, to_child_bytes: int = 0, to_parent_bytes: int = 0
    ) -> HelperProcess:
        """Start ``python -m module`` with the repository on PYTHONPATH and hand it ``settings``.

        ``to_child_bytes``, ``to_parent_bytes``: how wide each pipe should be (0: the system's
        default, 64 KiB on Linux). Raises OSError when the process cannot start."""
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        _widen(down_write, to_child_bytes)
        _widen(up_write, to_parent_bytes)
        root = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", module, str(down_read), str(up_write)],
                stdin=subprocess.PIPE,
                pass_fds=(down_read, up_write),
                env=env,
            )
        except BaseException:
            for fd in (down_write, up_read):
                os.close(fd)
            raise
        finally:
            os.close(down_read)
            os.close(up_write)
        helper = cls(process, Connection(down_write, readable=False), Connection(up_read, writable=False))
        assert process.stdin is not None
        try:
            process.stdin.write(pickle.dumps((os.getpid(), settings)))
            process.stdin.close()
        except OSError:  # it died before reading them
            helper.stop()
            raise
        return helper

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Still running (a child that ended is reaped here)."""
        return self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it ended (negative: the signal that ended it), else None."""
        return self._process.poll()

    def stop(self, timeout: float = 5.0) -> int:
        """Close both channels, SIGTERM, wait up to ``timeout``, then SIGKILL; reap it. Frames
        not read yet are dropped. Returns the exit status; stopping again only returns it."""
        for conn in (self._outbox, self._inbox):
            conn.close()  # idempotent; a child blocked writing to us gets a broken pipe
        if self._process.poll() is None:
            self._process.terminate()
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait()


class HelperChild(_Framed):
    """The child's side, made by ``connect`` first thing in a helper module's ``main``."""

    def __init__(self, settings: object, parent: int, inbox: Connection, outbox: Connection) -> None:
        self.settings = settings
        self.parent = parent
        self._inbox = inbox
        self._outbox = outbox
        self._stopping = False

    @classmethod
    def connect(cls) -> HelperChild:
        """Signals, the death signal, the settings from stdin and the channels from argv (the
        fds ``HelperProcess.start`` passed). A parent gone before the settings came: exit 0."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
        set_death_signal = death_signal_setter()
        if set_death_signal is not None:
            set_death_signal(signal.SIGTERM)
        try:
            parent, settings = pickle.load(sys.stdin.buffer)
        except (EOFError, pickle.UnpicklingError):
            raise SystemExit(0) from None
        sys.stdin.close()
        child = cls(
            settings,
            parent,
            Connection(int(sys.argv[1]), writable=False),
            Connection(int(sys.argv[2]), readable=False),
        )
        signal.signal(signal.SIGTERM, child._on_sigterm)
        return child

    def running(self) -> bool:
        """Not asked to stop, and the parent that started us is still there."""
        return not self._stopping and os.getppid() == self.parent

    def _on_sigterm(self, _sig: int, _frame: object) -> None:
        self._stopping = True
        signal.alarm(STOP_GRACE_SECONDS)  # SIGALRM's default action ends a child that never looks


@functools.cache
def death_signal_setter() -> Callable[[int], object] | None:
    """``prctl(PR_SET_PDEATHSIG, sig)`` on Linux, else None: the signal this process gets
    when its parent (the thread that started it) ends."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return lambda sig: prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _widen(fd: int, size: int) -> None:
    """Ask for a pipe buffer of ``size`` bytes, at most the system's maximum; on a platform
    without F_SETPIPE_SZ, or if refused, the default buffer works, only with less in flight."""
    if size <= 0:
        return
    try:
        wanted = min(size, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, wanted)
    except (OSError, ValueError, AttributeError):
        pass
