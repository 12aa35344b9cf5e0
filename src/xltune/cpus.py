"""How many CPUs this process may use, and torch's threads sized to them (called at the start of every run).

Each process of a parallel sweep (local workers, Slurm jobs sharing a node, ranks of one data-parallel run) would
otherwise start one OpenMP thread per core of the machine; on 2 cores two such processes stall each other (a cold
demo took 82 s alone and 418 s beside two busy processes). The share is the smallest of: the CPUs this process may
run on (``os.sched_getaffinity``: a local sweep pins each worker to its own cores; cgroup-bound Slurm jobs), Slurm's
allocation (``SLURM_CPUS_PER_TASK``, else ``SLURM_CPUS_ON_NODE``: clusters that do not bind tasks to cores), divided
among the ranks of one data-parallel run on this machine (``LOCAL_WORLD_SIZE``). An explicit ``OMP_NUM_THREADS``
is the user's choice and is left alone.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for var in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            n = min(n, int(value))
            break
    ranks = os.environ.get("LOCAL_WORLD_SIZE", "")
    if ranks.isdigit() and int(ranks) > 1:
        n //= int(ranks)
    return max(1, n)


def size_threads() -> int:
    """Set torch's intra-op threads to :func:`usable_cpus` (unless OMP_NUM_THREADS is set); returns the count."""
    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        n = usable_cpus()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    return torch.get_num_threads()
