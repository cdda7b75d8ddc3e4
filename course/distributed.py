"""Run a function on W local processes that form one torch.distributed group (gloo, on CPU).

Families whose papers spread work over devices (expert parallelism, pipeline or tensor parallelism)
run their algorithm for real this way: W processes on this machine, a gloo process group over
127.0.0.1, each rank calling `fn(rank, world_size, *args)`, and the ranks' results collected in
the parent. The same code runs under NCCL across GPUs; only the launcher is local.
"""
import pickle
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from course.checks import check_int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, fn, world_size: int, port: int, args: tuple, queue):
    """One process: join the group, run `fn`, send its result to the parent, leave the group."""
    torch.set_num_threads(1)  # W processes share the machine's cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=60))
    try:
        queue.put((rank, pickle.dumps(fn(rank, world_size, *args))))
    finally:
        dist.destroy_process_group()


def launch(fn, world_size: int, *args, timeout_s: float = 120.0) -> list:
    """`fn(rank, world_size, *args)` on `world_size` spawned processes; their results, by rank.

    `fn` must be importable (a module-level function) and its result picklable. A rank that fails
    raises here; a timeout, a failure or an interrupted notebook cell stops the other ranks.
    """
    check_int("distributed.launch", "world_size", world_size, low=1)
    queue = mp.get_context("spawn").SimpleQueue()
    procs = mp.start_processes(_rank_main, args=(fn, world_size, free_port(), args, queue),
                               nprocs=world_size, join=False, start_method="spawn")
    results, done, deadline = {}, False, time.monotonic() + timeout_s
    try:
        while not (done and len(results) == world_size):
            while not queue.empty():  # read as they come: a full pipe would block a rank's exit
                rank, blob = queue.get()
                results[rank] = pickle.loads(blob)
            done = done or procs.join(timeout=0.05)  # raises if a rank failed
            if time.monotonic() > deadline:
                raise TimeoutError(f"distributed.launch: the ranks did not finish within "
                                   f"{timeout_s} s.")
    except BaseException:
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
        raise
    return [results[r] for r in range(world_size)]
