"""The worker pool of a local sweep: one process per slot, jobs handed to whichever worker is idle.

Written here rather than taken from joblib/loky or submitit: loky reuses workers without resetting them and
knows nothing of GPUs, submitit's local executor gives every job GPU 0. Workers are plain subprocesses
(``python -m tricklab.launch.worker``) talking over a socket pair, so their environment is set before Python
starts and the sweep script is never re-imported in them. A worker that dies is replaced (same slot) and its
job reported as failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

from tricklab.launch.devices import Slot
from tricklab.launch.messages import JobOrder, JobOutcome, PackOrder, Setup, orders_of

STOP_GRACE_S = 10.0


class Worker:
    """A worker process owning one slot, and the job (or fused pack of jobs) it is running (None when idle)."""

    def __init__(self, slot: Slot, setup: Setup) -> None:
        self.slot = slot
        ours, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", "tricklab.launch.worker", str(theirs.fileno()),
               ",".join(map(str, slot.cores)), str(os.getpid())]
        self.process = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], env={**os.environ, **slot.env()})
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(setup)
        self.order: JobOrder | PackOrder | None = None
        self.started = 0.0

    def give(self, order: JobOrder | PackOrder) -> None:
        """Send ``order`` to this worker (a dead worker is noticed by ``collect``)."""
        self.order, self.started = order, time.time()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a dead worker: collect() reports it
            self.conn.send(order)

    def collect(self) -> list[tuple[JobOrder, JobOutcome]]:
        """Each job of what the worker ran, with its outcome; failed ones naming the exit code when the process
        died."""
        item, self.order = self.order, None
        orders = orders_of(item)
        try:
            outcome = self.conn.recv()
            return list(zip(orders, outcome if isinstance(item, PackOrder) else [outcome], strict=True))
        except (EOFError, ConnectionResetError):
            code = self.process.wait()
            return [(order, JobOutcome(order.num, False, None, f"the worker process died (exit code {code}) during "
                                       f"the job", self.process.pid, self.slot.device, self.started, time.time()))
                    for order in orders]

    @property
    def alive(self) -> bool:
        """True while the worker process runs."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the worker. An idle one holds nothing (its jobs recorded themselves, it has reset since), so it is
        killed at once, even in the middle of its start-up imports. A busy one is interrupted (its job records
        itself ``interrupted``) and its connection closed, then killed if it has not exited within the grace
        time."""
        busy = self.order is not None and self.alive
        if busy:
            self.process.send_signal(signal.SIGINT)
        self.conn.close()
        if busy:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE_S)
        self.process.kill()  # nothing if it has exited
        self.process.wait()


class WorkerPool:
    """Workers for the slots, started as jobs need them and kept between batches (a sweeper such as Optuna
    launches its trials batch after batch), so Python's and torch's start-up is paid once per worker."""

    def __init__(self, slots: Sequence[Slot], setup: Setup) -> None:
        self.slots, self.setup = list(slots), setup
        self.workers: list[Worker] = []

    def run(self, orders: Sequence[JobOrder | PackOrder], on_start: Callable[[JobOrder, Slot], None],
            on_done: Callable[[JobOrder, JobOutcome], None]) -> None:
        """Run every order (a job, or a pack of jobs trained together), each on the next idle worker; call back as
        each job starts and ends."""
        pending = deque(orders)
        self.warm(len(orders))
        try:
            while pending or any(w.order for w in self.workers):
                for worker in self.workers:
                    if worker.order is None and pending:
                        worker.give(pending.popleft())
                        for order in orders_of(worker.order):
                            on_start(order, worker.slot)
                busy = {w.conn: w for w in self.workers if w.order is not None}
                for conn in wait(list(busy)):
                    worker = busy[conn]
                    for order, outcome in worker.collect():
                        on_done(order, outcome)
                    if not worker.alive:  # its replacement owns the same slot
                        self.workers[self.workers.index(worker)] = Worker(worker.slot, self.setup)
        except BaseException:
            self.close()
            raise

    def warm(self, jobs: int) -> None:
        """Have workers for ``jobs`` concurrent jobs (at most one per slot) started: each imports what its jobs
        will need while it waits for the first."""
        while len(self.workers) < min(len(self.slots), jobs):
            self.workers.append(Worker(self.slots[len(self.workers)], self.setup))

    def close(self) -> None:
        """Stop every worker."""
        for worker in self.workers:
            worker.stop()
        self.workers = []

    # --- one job at a time, for a sweeper that asks for the next job when a worker is free -----------------

    def idle(self) -> int:
        """How many slots have no running job (a slot whose worker is not started yet counts)."""
        return len(self.slots) - sum(w.order is not None for w in self.workers)

    def start(self, order: JobOrder) -> Slot:
        """Give ``order`` to an idle worker, starting one on a free slot if none is idle (``idle()`` must be > 0);
        the slot it runs on."""
        worker = next((w for w in self.workers if w.order is None), None)
        if worker is None:
            worker = Worker(self.slots[len(self.workers)], self.setup)
            self.workers.append(worker)
        worker.give(order)
        return worker.slot

    def wait_any(self) -> list[tuple[JobOrder, JobOutcome]]:
        """Block until at least one running job ends; the jobs that ended, with their outcomes."""
        busy = {w.conn: w for w in self.workers if w.order is not None}
        ended = []
        for conn in wait(list(busy)):
            worker = busy[conn]
            ended.extend(worker.collect())
            if not worker.alive:  # its replacement owns the same slot
                self.workers[self.workers.index(worker)] = Worker(worker.slot, self.setup)
        return ended
