"""A tiny helper process for tests/model_store/test_helper_process.py:
``python -m tests.helpers.echo_helper``, started by ``HelperProcess.start``.

It first reports its settings and the sizes of its two pipes, then, by ``settings["mode"]``:
``echo`` sends every frame back until EOF or ``running()`` says no; ``exit`` exits with
``settings["code"]``; ``block`` never looks at ``running()`` (only a signal ends it).
"""

from __future__ import annotations

import fcntl
import signal
import sys

from model_store.helper_process import HelperChild


def main() -> None:
    child = HelperChild.connect()
    settings = child.settings
    assert isinstance(settings, dict)
    pipes = [fcntl.fcntl(int(fd), fcntl.F_GETPIPE_SZ) for fd in sys.argv[1:3]]  # to the child, to the parent
    child.send({"settings": settings, "pipes": pipes})
    if settings["mode"] == "exit":
        raise SystemExit(settings["code"])
    if settings["mode"] == "block":
        while True:
            signal.pause()
    while child.running():
        if child.poll(0.05):
            try:
                frame = child.recv_bytes()
            except EOFError:
                return
            child.send_bytes(frame)


if __name__ == "__main__":
    main()
