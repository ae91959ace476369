"""Generated prediction ids: unique within a process, across processes and across a fork."""

from __future__ import annotations

import multiprocessing
import os

from api.ids import IdSource


def _ids(queue) -> None:
    source = IdSource()
    queue.put([source.next_id() for _ in range(1000)])


def test_ids_are_32_hex_characters_and_never_repeat():
    source = IdSource()
    ids = [source.next_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids)


def test_two_processes_and_two_sources_draw_different_ids():
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_ids, args=(queue,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    got = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
    here = [IdSource().next_id() for _ in range(2)]
    everything = got[0] + got[1] + here
    assert len(set(everything)) == len(everything)


def test_a_forked_child_does_not_repeat_its_parents_ids():
    source = IdSource()
    source.next_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the id it would give next
        os.write(write, source.next_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    parent = source.next_id()
    assert len(child) == 32 and child[:20] != parent[:20]


def test_a_new_prefix_is_drawn_when_the_counter_runs_out():
    source = IdSource()
    first = source.next_id()
    source._limit = 2  # as if 2**48 ids had been handed out
    source.next_id()
    after = source.next_id()
    assert len(after) == 32 and after[:20] != first[:20]
