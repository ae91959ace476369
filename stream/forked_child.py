"""Run one function in a forked child and collect what it returns, without waiting for it.

Redis takes its snapshots this way (BGSAVE): ``fork()`` shares the process's memory
copy-on-write, so the child sees every object exactly as it was at the fork and can
serialise it while the parent goes on changing its own copy.

A child of a multi-threaded process runs only the thread that forked: a lock another
thread held at that moment stays locked for ever in the child. So the work must touch
only objects no other thread uses, and the child itself:

- logs nothing and silences warnings (the logging module's and stderr's locks);
- reports through a pipe, as bytes, and leaves with ``os._exit``: no atexit handler,
  no flush of buffers inherited from the parent, no finalizer runs;
- disables the garbage collector (a collection would walk, and so copy, the parent's
  objects; the child lives for one piece of work);
- ignores SIGINT (Ctrl-C reaches the whole process group: the parent decides) and
  dies on SIGTERM;
- on Linux, is killed when its parent dies (``PR_SET_PDEATHSIG``), so even a SIGKILLed
  trainer leaves no orphan writing behind it. (Linux documents the signal for the exit of
  the forking *thread*; a trainer reaps its child before its thread ends anyway.)

The parent polls with ``poll()`` (``waitpid(WNOHANG)`` and a non-blocking read of the
pipe, drained on every call so a report larger than the pipe's buffer cannot stall the
child) and must end with ``poll()`` returning a result or ``wait()``: both reap the
child, so no zombie remains.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from model_store.helper_process import death_signal_setter

_REPORT, _CRASH = b"R", b"X"


def can_fork() -> bool:
    """Whether this platform has ``os.fork`` (POSIX)."""
    return hasattr(os, "fork")


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: what its work returned, or the traceback it raised, or neither
    (killed, or died before it could report)."""

    report: bytes | None
    crash: str | None
    status: str  # e.g. "exit code 0", "killed by SIGKILL"


class ForkedChild:
    """One forked child running ``work() -> bytes``; see the module docstring."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd = fd
        self._received = bytearray()
        self.result: ChildResult | None = None

    @classmethod
    def start(cls, work: Callable[[], bytes]) -> ForkedChild:
        """Fork now; the child runs ``work`` and reports what it returns. Raises OSError when
        the fork fails (no child then)."""
        set_death_signal = death_signal_setter()  # looked up here: no dlopen in a child
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        try:
            # Python 3.12 warns about fork() in a multi-threaded process; the rules in the
            # module docstring are what makes it safe here (requires-python is 3.11).
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:
            _run_child(work, read_fd, write_fd, parent, set_death_signal)  # never returns
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return cls(pid, read_fd)

    def poll(self) -> ChildResult | None:
        """The result once the child ended (it is reaped then), else None. Never blocks."""
        if self.result is not None:
            return self.result
        self._drain()
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): the report is all we have
            pid, status = self.pid, None
        if pid == 0:
            return None
        self._drain()
        os.close(self._fd)
        self.result = self._outcome(status)
        return self.result

    def wait(self, timeout: float | None = None) -> ChildResult:
        """Wait for the child to end; after ``timeout`` seconds kill it (SIGKILL) first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while (result := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                deadline = None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return result

    def kill(self) -> None:
        """SIGKILL the child unless it was reaped already (its pid cannot be reused before)."""
        if self.result is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._received += chunk

    def _outcome(self, status: int | None) -> ChildResult:
        code = None if status is None else os.waitstatus_to_exitcode(status)
        if code is None:
            described = "reaped by someone else"
        elif code < 0:
            described = f"killed by {signal.Signals(-code).name}"
        else:
            described = f"exit code {code}"
        data = bytes(self._received)
        if code not in (0, None):  # it exits 0 only once its whole report is written
            return ChildResult(None, None, described)
        if data[:1] == _REPORT:
            return ChildResult(data[1:], None, described)
        if data[:1] == _CRASH:
            return ChildResult(None, data[1:].decode(errors="replace"), described)
        return ChildResult(None, None, described)


def _run_child(
    work: Callable[[], bytes],
    read_fd: int,
    write_fd: int,
    parent: int,
    set_death_signal: Callable[[int], object] | None,
) -> None:
    code = 1
    try:
        os.close(read_fd)
        gc.disable()
        logging.disable(logging.CRITICAL)
        warnings.simplefilter("ignore")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if set_death_signal is not None:
            set_death_signal(signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the death signal was armed
            return
        try:
            payload = _REPORT + work()
        except BaseException:
            payload = _CRASH + traceback.format_exc().encode(errors="replace")
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
        code = 0
    except BaseException:  # nothing may escape into the parent's code, which this copy would run
        pass
    finally:
        os._exit(code)
