"""``vc batch``: many conversions from the command line; resumable, on many cores or machines.

    vc batch pairs.tsv -o out/                             a table: source,target[,output]
    vc batch --sources clips/ --target voice.wav -o out/   every file of a folder in one voice
    vc batch pairs.tsv -o out/ --shard 3/8                 this machine's eighth of the rows

An output appears only when whole (vc.audio.save_audio writes a temporary file, then renames
it), so re-running the same command after a crash or a kill skips what is done and redoes the
rest. A bad input fails its row, with its reason, and the batch goes on. The summary is printed
and written to OUT_DIR/batch_report.tsv. Exit status: 0 every row done or skipped, 1 some rows
failed, 2 a wrong command. Rows are planned by vc.jobs; this file runs them.

Each worker process loads the model once. Each target voice is embedded once (by whichever
worker is free) and its speaker vector (speaker_dim,) float32, with its speech frames
(n_mels, S) when envelope matching is on, travels to the workers with its rows.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .audio import AudioError, match_loudness, save_audio
from .checkpoint import CheckpointError
from .files import OutputError, atomic_open, check_output_folder, make_folder
from .jobs import (Job, PlanError, is_complete, parse_shard, plan_folder, plan_table,
                   remove_temp_files, shard)

DESCRIPTION = """\
Convert many pairs at once.

  vc batch PAIRS.tsv -o OUT_DIR
      PAIRS is a CSV or TSV table with the header source,target[,output]. Relative paths
      resolve against the table's folder; outputs against OUT_DIR, which they cannot leave.
      A target may be a file, a folder of clips of one voice, or files joined by ';'.
      Default output name: <source stem>__in_voice_of__<target stem>.wav (plus a short hash
      of the inputs when two different rows would get the same name).
  vc batch --sources DIR --target VOICE.wav [--target MORE.wav ...] -o OUT_DIR
      Every audio file under DIR (recursively) in the voice of the target clips (a file or a
      folder; several clips are averaged). OUT_DIR mirrors the tree of DIR.

Re-running the same command skips finished outputs and redoes the rest. --shard I/N runs a
fixed 1/N of the rows, for cluster arrays (Slurm: --shard $((SLURM_ARRAY_TASK_ID+1))/N).
Exit status: 0 all rows done or skipped, 1 some rows failed (see OUT_DIR/batch_report.tsv),
2 the command is wrong.
"""
REPORT_COLUMNS = ("row", "status", "source", "target", "output", "reason", "seconds")


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))   # respects Slurm / cgroup CPU sets
    except AttributeError:
        return os.cpu_count() or 1


def reason(err: Exception) -> str:
    """One line: AudioError names the file already; anything else gets its type."""
    if isinstance(err, (AudioError, OutputError)):
        return str(err)
    first = (str(err).splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


# -- one process's share of the work -------------------------------------------------------------

class Worker:
    """A loaded model and vocoder in one process: embeds voices, converts rows."""

    def __init__(self, model: str, vocoder: str, device: str, threads: int, precision: str = "auto",
                 max_seconds: float | None = None, strength: float | None = None, adapt_steps: int = 0,
                 match: float | None = None, match_high: float | None = None):
        import torch
        from .convert import load
        torch.set_num_threads(threads)
        limit = {} if max_seconds is None else {"max_seconds": max_seconds}
        self.conv = load(model, vocoder=vocoder, device=device, precision=precision, strength=strength,
                         adapt_steps=adapt_steps, match=match,
                         match_high=match_high, **limit)
        noise = np.random.default_rng(0).uniform(-0.1, 0.1, self.conv.sample_rate).astype(np.float32)
        self.conv.vocode(self.conv.mel(noise))   # warm-up: first calls set up filters and kernels

    def embed(self, clips: tuple[str, ...]) -> tuple[tuple | None, str]:
        """Clips of one voice -> ((mean speaker vector (speaker_dim,), speech frames (n_mels, S) or
        None), '') or (None, reason)."""
        try:
            voice = self.conv.target(*clips)
            frames = None if voice.frames is None else voice.frames.float().cpu().numpy()
            return (voice.vector.float().cpu().numpy(), frames), ""
        except Exception as e:     # a bad clip fails the rows of this voice, not the batch
            return None, "target " + reason(e)

    def convert(self, source: str, voice: tuple, output: str,
                out_rate: int | None) -> tuple[str, float]:
        """Write ``source``'s words in ``voice`` (what :meth:`embed` gave) to ``output`` -> (reason or '', seconds)."""
        import torch
        start, conv = time.perf_counter(), self.conv
        vector, frames = (None if x is None else torch.from_numpy(x).to(conv.device) for x in voice)
        try:
            wav = conv.load(source)
            mel = conv.convert_mel(conv.mel(wav), vector, pitch=conv.pitch(wav), frames=frames)
            save_audio(output, match_loudness(conv.vocode(mel), wav), conv.sample_rate, out_rate=out_rate)
            return "", time.perf_counter() - start
        except Exception as e:     # the row fails with its reason; the batch goes on
            return reason(e), time.perf_counter() - start


_WORKER: Worker | None = None     # one per pool process, made by the pool's initializer


def _start_worker(*settings):
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
    _WORKER = Worker(*settings)


def _embed(clips):
    return _WORKER.embed(clips)


def _convert(*args):
    return _WORKER.convert(*args)


def execute(todo: list[Job], worker: Worker | None, settings: tuple, workers: int,
            out_rate: int | None, bar: tqdm):
    """Run ``todo`` in place (``worker`` given) or on a pool of ``workers`` processes; every
    job ends 'done' or 'failed'. A voice is embedded once, then its rows are converted."""
    by_voice: dict[tuple, list[Job]] = {}
    for job in todo:
        by_voice.setdefault(job.targets, []).append(job)

    failed = 0

    def finish(job: Job, problem: str, seconds: float = 0.0):
        nonlocal failed
        job.status, job.reason, job.seconds = ("failed" if problem else "done"), problem, seconds
        bar.update()
        if problem:
            failed += 1
            bar.set_postfix(failed=failed, refresh=False)

    if worker is not None:
        for voice, jobs in by_voice.items():
            embedded, problem = worker.embed(tuple(map(str, voice)))
            for job in jobs:
                if problem:
                    finish(job, problem)
                else:
                    finish(job, *worker.convert(str(job.source), embedded, str(job.output), out_rate))
        return

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=settings)
    pending = {pool.submit(_embed, tuple(map(str, v))): v for v in by_voice}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                if isinstance(item, Job):
                    finish(item, *fut.result())
                    continue
                embedded, problem = fut.result()
                for job in by_voice[item]:
                    if problem:
                        finish(job, problem)
                    else:
                        pending[pool.submit(_convert, str(job.source), embedded, str(job.output), out_rate)] = job
    except BrokenProcessPool as e:     # a worker was killed (out of memory?) or could not start
        for job in todo:
            if job.status == "todo":
                finish(job, f"a worker process died ({e}); re-run to retry")
    except KeyboardInterrupt:
        print("\nvc batch: interrupted; waiting for the rows in progress", file=sys.stderr)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- the command ---------------------------------------------------------------------------------

def model_path(model: str | None) -> Path:
    from .convert import default_model_path
    path = Path(model) if model else default_model_path()     # NoModelError: exit status 2
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def write_report(path: Path, jobs: list[Job]) -> Path:
    """The report as TSV, written atomically (a kill never leaves half a report)."""
    with atomic_open(path, "w", suffix=".tmp", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(REPORT_COLUMNS)
        for j in jobs:
            out = os.path.relpath(j.output, path.parent) if j.output else j.output_text
            w.writerow([j.row, j.status, j.source or j.source_text, j.target_text, out,
                        j.reason, f"{j.seconds:.2f}"])
    return path


def print_failures(jobs: list[Job], limit: int = 20):
    failed = [j for j in jobs if j.status == "failed"]
    for j in failed[:limit]:
        print(f"  row {j.row}: {j.reason}")
    if len(failed) > limit:
        print(f"  ... and {len(failed) - limit} more (see the report)")


def dry_run(mine: list[Job], out_dir: Path) -> int:
    for j in mine:
        out = os.path.relpath(j.output, out_dir) if j.output else j.output_text
        what = {"todo": f"convert {j.source} -> {out}", "skipped": f"skip    {out} ({j.reason})",
                "failed": f"fail    {j.reason}"}[j.status]
        print(f"row {j.row}: {what}")
    count = {s: sum(j.status == s for j in mine) for s in ("todo", "skipped", "failed")}
    print(f"dry run: would convert {count['todo']}, skip {count['skipped']}; "
          f"{count['failed']} rows cannot be done. Nothing was written.")
    return 1 if count["failed"] else 0


def check_args(args):
    from .cli import UsageError
    if bool(args.table) == bool(args.sources):
        raise UsageError("give either a table (vc batch PAIRS.tsv) or --sources DIR --target VOICE")
    if args.sources and not args.target:
        raise UsageError("--sources needs --target VOICE (a file or a folder of clips of one voice)")
    if args.table and args.target:
        raise UsageError("--target goes with --sources; in a table, targets are a column")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.sample_rate is not None and not 8000 <= args.sample_rate <= 192000:
        raise UsageError("--sample-rate must be between 8000 and 192000")
    from .convert import check_device
    check_device(args.device)                 # before any row is planned or a worker started
    from .cli import check_strength_option, max_seconds
    max_seconds(args)
    check_strength_option(args)
    check_output_folder(args.output)


def run(args) -> int:
    from .cli import max_seconds
    check_args(args)
    index, count = parse_shard(args.shard)
    model = model_path(args.model)
    out_dir = Path(args.output).resolve()

    jobs = (plan_table(args.table, out_dir, args.format) if args.table
            else plan_folder(args.sources, args.target, out_dir, args.format))
    mine = shard(jobs, index, count)
    for job in mine:
        if job.status == "todo" and not args.overwrite and is_complete(job.output):
            job.status, job.reason = "skipped", "already done"
    if args.dry_run:
        return dry_run(mine, out_dir)

    make_folder(out_dir)
    removed = remove_temp_files(mine)
    todo = [j for j in mine if j.status == "todo"]
    cores = cpu_cores()
    workers = max(1, min(args.workers or cores, len(todo)))
    threads = args.threads or max(1, cores // workers)
    part = f" (shard {index}/{count}: {len(mine)})" if count > 1 else ""
    print(f"vc batch: {len(jobs)} rows{part}; {len(todo)} to convert, "
          f"{sum(j.status == 'skipped' for j in mine)} skipped, {sum(j.status == 'failed' for j in mine)} refused"
          + (f"; removed {removed} temporary files of an interrupted run" if removed else ""))

    start, interrupted = time.perf_counter(), False
    if todo:
        settings = (str(model), args.vocoder, args.device, threads, args.precision, max_seconds(args),
                    args.strength, args.adapt, args.match, args.match_high)
        if workers == 1:
            worker = Worker(*settings)
        else:                                # each pool process loads its own; a bad model or
            from .convert import load        # device should stop the command here, though
            load(str(model), vocoder=args.vocoder, device=args.device, precision=args.precision,
                 strength=args.strength, adapt_steps=args.adapt, match=args.match, match_high=args.match_high)
            worker = None
        from .vocoder import resolve_precision
        precision = f" ({resolve_precision(args.precision, args.device)})" if args.vocoder == "hifigan" else ""
        print(f"model {model}, vocoder {args.vocoder}{precision}, device {args.device}, "
              f"{workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}")
        with tqdm(total=len(todo), unit=" rows", desc="converting", dynamic_ncols=True,
                  bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                             "{rate_noinv_fmt}{postfix}]") as bar:
            try:
                execute(todo, worker, settings, workers, args.sample_rate, bar)
            except KeyboardInterrupt:
                interrupted = True
                for job in todo:            # a row finished but not yet collected counts as done
                    if job.status == "todo":
                        job.status, job.reason = (("done", "") if not args.overwrite and is_complete(job.output)
                                                  else ("not run", "interrupted"))
    elapsed = time.perf_counter() - start

    name = "batch_report.tsv" if count == 1 else f"batch_report.shard-{index}-of-{count}.tsv"
    report = write_report(out_dir / name, mine)
    n = {s: sum(j.status == s for j in mine) for s in ("done", "skipped", "failed", "not run")}
    rate = f" ({n['done'] / elapsed:.2f} rows/s)" if n["done"] and elapsed > 0 else ""
    print(f"{n['done']} done, {n['skipped']} skipped, {n['failed']} failed"
          + (f", {n['not run']} not run (interrupted)" if interrupted else "")
          + f" in {elapsed:.1f} s{rate}; report: {report}")
    print_failures(mine)
    if interrupted:
        return 130
    return 1 if n["failed"] else 0


def register(sub):
    from .cli import add_conversion_options, add_model_options
    p = sub.add_parser("batch", help="many conversions: a table of pairs, or a folder in one voice",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", nargs="?", help="CSV or TSV with the header source,target[,output]")
    p.add_argument("--sources", metavar="DIR", help="convert every audio file under DIR (recursively)")
    p.add_argument("--target", action="append", metavar="VOICE",
                   help="with --sources: a clip or a folder of clips of the target voice (repeatable)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--workers", type=int, metavar="N",
                   help=f"processes, each with the model loaded once (default: the cores, here {cpu_cores()}); "
                        "1 runs in this process")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per process (default: the cores divided by the workers)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="output format (default wav)")
    p.add_argument("--sample-rate", type=int, metavar="HZ", help="output rate (default: the model's, 22050)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--dry-run", action="store_true", help="list what would be done; write nothing")
    p.add_argument("--shard", metavar="I/N", help="do only the I-th of N interleaved parts of the rows (1-based)")
    add_model_options(p)
    add_conversion_options(p)
    p.set_defaults(func=run)
