"""`xltune sweep CONFIG --grid key=v1,v2 ...`: expand a grid into runs; skip finished ones; resume by rerunning.
Cells run here (--workers N) or as a Slurm job array (--launcher slurm); each job's shard is merged into the store."""

from __future__ import annotations

SLURM_FLAGS = ("partition", "gpus_per_job", "cpus_per_job", "time", "array_parallelism", "slurm", "no_wait")


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of configs, here or on Slurm (finished runs are skipped)",
                       description="Each --grid multiplies the runs; every run is keyed by a hash of its resolved "
                                   "config and seed, so a killed sweep resumes where it stopped when rerun. Each "
                                   "job writes a shard store of its own (STORE.shards/), merged into the store as "
                                   "jobs finish.")
    p.add_argument("config", help="base YAML config, or a sweep plan (a YAML file with a top-level 'sweep:' list)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="e.g. --grid method.name=finetune,deep_prompt --grid train.shots=8,16 --grid seeds=1,2,3")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every run")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether each is done; run nothing")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: on this machine (--workers); slurm: one job array through submitit")
    local = p.add_argument_group("--launcher local")
    local.add_argument("--workers", type=int, default=None,
                       help="parallel processes, each on its share of the CPUs (one GPU each where there are "
                            "several); default 1: in this process")
    slurm = p.add_argument_group("--launcher slurm")
    slurm.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    slurm.add_argument("--gpus-per-job", type=int, default=None, metavar="N",
                       help="GPUs per job (default 1; 0 on CPU-only clusters; N > 1: one data-parallel run)")
    slurm.add_argument("--cpus-per-job", type=int, default=None, metavar="N", help="CPUs per job (default: the "
                       "cluster's); each run's torch threads are sized to them")
    slurm.add_argument("--time", default=None, help="time limit per job, Slurm's format (default 2:00:00); near it "
                       "a job is requeued and resumes from its checkpoint")
    slurm.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                       help="at most N jobs of the array at once")
    slurm.add_argument("--slurm", action="append", default=None, metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --slurm account=nlp --slurm qos=high --slurm mem=32G")
    slurm.add_argument("--no-wait", action="store_true",
                       help="submit and return; rerun the command to merge finished jobs and resubmit what is missing")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import XLTuneError
    from ..sweep import run_sweep

    given = [f"--{k.replace('_', '-')}" for k in SLURM_FLAGS if getattr(args, k) not in (None, False)]
    slurm = None
    if args.launcher == "local":
        if given:
            raise XLTuneError(f"{', '.join(given)}: only with --launcher slurm")
    else:
        from ..launchers import SlurmOptions, slurm_minutes

        if args.workers is not None:
            raise XLTuneError("--workers is for --launcher local; on Slurm, --array-parallelism N limits how many "
                              "jobs run at once")
        extra = {}
        for item in args.slurm or []:
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise XLTuneError(f"--slurm expects KEY=VALUE (an sbatch option without its dashes), got {item!r}")
            extra[key.strip().lstrip("-")] = value
        for flag, n, least in (("--gpus-per-job", args.gpus_per_job, 0), ("--cpus-per-job", args.cpus_per_job, 1),
                               ("--array-parallelism", args.array_parallelism, 1)):
            if n is not None and n < least:
                raise XLTuneError(f"{flag} {n}: expected a number of at least {least}")
        slurm_minutes(args.time or "2:00:00")  # a bad --time fails before anything is expanded or submitted
        gpus = 1 if args.gpus_per_job is None else args.gpus_per_job
        slurm = SlurmOptions(partition=args.partition, gpus_per_job=gpus, cpus_per_job=args.cpus_per_job,
                             time=args.time or "2:00:00", array_parallelism=args.array_parallelism, extra=extra)
    if args.workers is not None and args.workers < 1:
        raise XLTuneError(f"--workers {args.workers}: expected at least 1")
    run_sweep(args.config, args.grid, overrides=args.overrides, launcher=args.launcher, workers=args.workers or 1,
              slurm=slurm, wait=not args.no_wait, dry_run=args.dry_run)
    return 0
