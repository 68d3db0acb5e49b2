"""Process pools for the one-off CPU jobs of the data side (probing an index, writing the synthetic dataset)."""

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

__all__ = ["map_in_processes", "BROKEN_POOL_HINT"]

BROKEN_POOL_HINT = (
    "a worker process of the pool ended abruptly. It was killed (out of memory?), or this runs from a script "
    "whose top level starts the work without `if __name__ == \"__main__\":`: the pool's processes are spawned, "
    "and each one imports the main script again")


def _apply_chunk(fn, chunk):
    return [fn(job) for job in chunk]


def map_in_processes(fn, jobs, num_workers, chunksize=1, fresh_process=False):
    """Yield ``fn(job)`` for every job of ``jobs``, in completion order, from ``num_workers`` spawned processes
    (``fn`` must be a module-level function; ``fresh_process``: a new process for every chunk, so that nothing a job
    leaves behind, such as GPU memory or global settings, reaches the next; Python >= 3.11, else the processes are
    reused); in this process, in order, with ``num_workers <= 1`` or inside a
    daemonic process (e.g. a DataLoader worker), which cannot start children. A pool whose worker dies raises a
    RuntimeError that says why this usually happens (:data:`BROKEN_POOL_HINT`), instead of hanging or re-running a
    script in every worker."""
    if num_workers <= 1 or multiprocessing.current_process().daemon:
        for job in jobs:
            yield fn(job)
        return
    jobs = list(jobs)
    chunksize = max(1, int(chunksize))
    context = multiprocessing.get_context("spawn")
    try:
        extra = {"max_tasks_per_child": 1} if fresh_process and sys.version_info >= (3, 11) else {}
        with ProcessPoolExecutor(max_workers=int(num_workers), mp_context=context, **extra) as pool:
            futures = [pool.submit(_apply_chunk, fn, jobs[i:i + chunksize]) for i in range(0, len(jobs), chunksize)]
            for future in as_completed(futures):
                yield from future.result()
    except BrokenProcessPool as e:
        raise RuntimeError(BROKEN_POOL_HINT) from e
