"""The helper process (model_store/helper_process.py) that the fetcher and the prediction log
run, as a real process: tests/helpers/echo_helper.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model_store.helper_process import HelperProcess
from tests.helpers.processes import ROOT, wait_until

ECHO = "tests.helpers.echo_helper"
SECRET = "kafka-password-never-in-argv"


def ended(pid: int) -> bool:
    """The process is gone, or a zombie nobody reaped (an orphan's new parent may not)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_settings_arrive_on_stdin_and_never_in_argv():
    settings = {"mode": "echo", "sasl.password": SECRET, "nested": [1, 2.5, None]}
    helper = HelperProcess.start(ECHO, settings)
    try:
        assert helper.recv()["settings"] == settings
        cmdline = Path(f"/proc/{helper.pid}/cmdline").read_bytes().split(b"\0")
        assert SECRET.encode() not in b" ".join(cmdline)
        assert cmdline[1:3] == [b"-m", ECHO.encode()]
    finally:
        helper.stop()


def test_frames_go_both_ways_through_pipes_as_wide_as_asked():
    helper = HelperProcess.start(ECHO, {"mode": "echo"}, to_child_bytes=1 << 20, to_parent_bytes=1 << 17)
    try:
        maximum = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert helper.recv()["pipes"] == [min(1 << 20, maximum), min(1 << 17, maximum)]
        helper.send({"a": [1, 2, 3]})
        assert helper.recv() == {"a": [1, 2, 3]}
        helper.send_bytes(b"")  # an empty frame is a frame too
        assert helper.recv_bytes() == b""
        big = bytes(range(256)) * 12_000  # larger than either pipe: framed over many writes
        helper.send_bytes(big)
        assert helper.recv_bytes() == big
        assert not helper.poll(0)
    finally:
        helper.stop()


def test_stop_ends_the_child_and_reaps_it():
    helper = HelperProcess.start(ECHO, {"mode": "echo"})
    helper.recv()
    assert helper.alive and helper.returncode is None
    # its input's end or SIGTERM's flag ended its loop (0), or SIGTERM came as it was exiting
    code = helper.stop(timeout=10)
    assert code in (0, -signal.SIGTERM)
    assert not helper.alive and not Path(f"/proc/{helper.pid}").exists()
    assert helper.stop() == code
    with pytest.raises(OSError):
        helper.send("after the end")


def test_a_child_that_ignores_the_stop_flag_is_ended_all_the_same():
    helper = HelperProcess.start(ECHO, {"mode": "block"})
    helper.recv()
    assert helper.stop(timeout=0.2) == -signal.SIGKILL
    assert not Path(f"/proc/{helper.pid}").exists()


def test_a_child_that_dies_is_reported():
    helper = HelperProcess.start(ECHO, {"mode": "exit", "code": 3})
    try:
        assert helper.recv()["settings"]["code"] == 3
        with pytest.raises(EOFError):
            helper.recv()
        wait_until(lambda: not helper.alive, timeout=30, what="the helper to exit")
        assert helper.returncode == 3
    finally:
        assert helper.stop() == 3


@pytest.mark.parametrize(
    "mode",
    [
        "echo",  # it sees the end of its input, and running() turns false
        "block",  # it never looks: PR_SET_PDEATHSIG's SIGTERM, then the grace's SIGALRM
    ],
)
def test_the_child_ends_when_its_parent_is_sigkilled(mode: str):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys
                from model_store.helper_process import HelperProcess
                helper = HelperProcess.start({ECHO!r}, {{"mode": {mode!r}}})
                helper.recv()
                print(helper.pid, flush=True)
                sys.stdin.read()  # until the test kills us
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    try:
        child = int(parent.stdout.readline())
        assert not ended(child)
        parent.send_signal(signal.SIGKILL)
        assert parent.wait(timeout=30) == -signal.SIGKILL
        wait_until(lambda: ended(child), timeout=30, what=f"the orphaned helper ({mode}) to end")
    finally:
        parent.kill()
        parent.wait()
