"""Checkpoints of a training run: what a ``ckpt_XXXXXXXX.pt`` holds, writing it (rank 0, keeping
the last ``keep_last``), resuming from the newest one that reads, and warm starts.

The layout (vc.checkpoint adds the model, mel settings and meta): ``train`` = step, config,
speakers, classifier, dvector_head, critic, critic_optimizer, optimizer, clf_optimizer,
best_val, elapsed, and with ``TrainConfig.ema`` the moving average ``ema`` (vc.checkpoint.weights). Checkpoints of earlier versions (without dvector_head, critic or elapsed)
still resume. StopSignals turns SIGINT / SIGTERM into "save, then stop".
"""
from __future__ import annotations

import os
import platform
import signal
import threading
from dataclasses import asdict
from pathlib import Path

import torch

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint, weights
from .model import AdaIN


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    return sorted(Path(run_dir).glob("ckpt_*.pt"))


class RunCheckpoints:
    """Saving and restoring one :class:`vc.train.Run` (its networks, optimisers and counters)."""

    def __init__(self, run):
        self.run = run

    def state(self) -> dict:
        r = self.run
        ema = {} if r.ema is None else {"ema": {k: v.detach().cpu() for k, v in r.ema.items()}}
        return {**ema, "step": r.step, "config": asdict(r.cfg), "speakers": r.speakers,
                "classifier": r.clf.state_dict(), "dvector_head": r.dvec_head.state_dict(),
                "critic": r.critic.state_dict(), "critic_optimizer": r.critic_opt.state_dict(),
                "optimizer": r.opt.state_dict(),
                "clf_optimizer": r.clf_opt.state_dict(), "best_val": r.best_val,
                "elapsed": r.elapsed()}

    def meta(self) -> dict:
        r = self.run
        return {"hardware": f"{platform.machine()} {platform.processor() or ''} x{os.cpu_count()} "
                            f"({r.device.type}, {r.world} process(es))".strip(),
                "torch": str(torch.__version__), "train_speakers": len(r.speakers),
                "wall_seconds": round(r.elapsed(), 1), "step": r.step}

    def save(self):
        """``ckpt_<step>.pt`` (rank 0 only), then drop all but the last ``keep_last``."""
        r = self.run
        if r.rank != 0:
            return None
        path = save_checkpoint(r.run_dir / f"ckpt_{r.step:08d}.pt", r.model, r.mel_cfg,
                               train=self.state(), meta=self.meta())
        for old in checkpoints(r.run_dir)[: -r.cfg.keep_last]:
            old.unlink()
        return path

    def save_best(self):
        r = self.run
        save_checkpoint(r.run_dir / "best.pt", r.model, r.mel_cfg, meta=self.meta())

    def resume(self) -> bool:
        """Load the newest checkpoint that reads (a damaged one is skipped with a warning)."""
        r = self.run
        for path in reversed(checkpoints(r.run_dir)):
            try:
                state = read_checkpoint(path)
            except CheckpointError as e:
                print(f"warning: {e}; trying an older checkpoint")
                continue
            tr = state["train"]
            if tr["speakers"] != r.speakers:
                raise ValueError(f"{path}: trained on other speakers than --data gives now")
            r.model.load_state_dict(state["model"])
            r.clf.load_state_dict(tr["classifier"])
            if "dvector_head" in tr:
                r.dvec_head.load_state_dict(tr["dvector_head"])
            if "critic" in tr:
                r.critic.load_state_dict(tr["critic"])
                r.critic_opt.load_state_dict(tr["critic_optimizer"])
            if "ema" in tr and r.cfg.ema > 0:
                r.ema = {k: v.to(r.device) for k, v in tr["ema"].items()}
            r.opt.load_state_dict(tr["optimizer"])
            r.clf_opt.load_state_dict(tr["clf_optimizer"])
            r.step, r.best_val = int(tr["step"]), float(tr["best_val"])
            r.elapsed_before = float(tr.get("elapsed", 0.0))
            if r.rank == 0:
                print(f"resumed from {path} at step {r.step}")
            return True
        if r.rank == 0:
            print(f"no checkpoint in {r.run_dir}: starting from scratch")
        return False

    def warm_start(self, path):
        """Copy the weights of ``path`` whose names and shapes match (fine-tuning); a tensor that
        grew (a wider content code, wider ``channels``) gets the old one in its leading slice, with
        the new input channels zeroed, so the widened network starts out computing what the old one
        did (an AdaIN projection's scale and shift halves are widened each in its own slice).
        The others, and the modules named in ``init_fresh``, keep their fresh initialisation.
        A training checkpoint gives its moving average of the weights when it kept one
        (vc.checkpoint.weights). Optimisers start fresh."""
        r = self.run
        fresh = tuple(f"{m}." for m in r.cfg.init_fresh)
        theirs = weights(read_checkpoint(path))
        unknown = [m for m in fresh if not any(k.startswith(m) for k in theirs)]
        if unknown:
            raise ValueError(f"init_fresh: {path} has no module {', '.join(m[:-1] for m in unknown)}")
        theirs = {k: v for k, v in theirs.items() if not k.startswith(fresh)}
        mine = r.model.state_dict()
        same = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
        stacked = {f"{name}.proj.{p}" for name, m in r.model.named_modules() if isinstance(m, AdaIN)
                   for p in ("weight", "bias")}       # scale and shift of each channel, one above the other
        grown = {k: widened(v, mine[k], halves=2 if k in stacked else 1) for k, v in theirs.items()
                 if k in mine and k not in same and _fits_inside(v.shape, mine[k].shape)}
        r.model.load_state_dict({**mine, **same, **grown})
        if r.rank == 0:
            print(f"warm start from {path}: {len(same)} of {len(mine)} tensors copied, "
                  f"{len(grown)} widened {sorted(grown)}, fresh: {sorted(set(mine) - set(same) - set(grown))}")


def _fits_inside(old, new) -> bool:
    return len(old) == len(new) and all(o <= n for o, n in zip(old, new))


def widened(old: torch.Tensor, fresh: torch.Tensor, halves: int = 1) -> torch.Tensor:
    """``fresh`` (a larger tensor of the same rank) with ``old`` in its leading slice. For a
    weight (rank >= 2, dim 1 = inputs) the extra input channels are zeroed, so that new inputs
    contribute nothing at first; extra outputs keep their fresh values (they feed only such
    zeroed inputs, or are biases). ``halves`` > 1: dim 0 stacks that many equal parts, each
    widened in its own slice."""
    if halves > 1:
        return torch.cat([widened(o, f) for o, f in zip(old.chunk(halves), fresh.chunk(halves))])
    out = fresh.clone()
    if out.dim() >= 2 and out.shape[1] > old.shape[1]:
        out[:, old.shape[1]:] = 0
    out[tuple(slice(0, n) for n in old.shape)] = old
    return out


class StopSignals:
    """Within ``with``: SIGINT and SIGTERM set ``received`` instead of killing the process, so
    the loop can finish its step and save. A second signal stops at once."""

    def __init__(self):
        self.received = None

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"\n{self.received}: saving a checkpoint after this step (again to stop at once)")

    def __enter__(self):
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
