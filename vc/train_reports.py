"""What a training run writes besides checkpoints (rank 0): metrics.jsonl and TensorBoard
scalars, the validation loss (and ``best.pt`` when it improves), and audio / spectrogram samples.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from . import losses
from .data import cache_path, compute_features, load_cached


class RunReports:
    """The writers of one :class:`vc.train.Run`; build it on rank 0 only."""

    def __init__(self, run):
        self.run = run
        self.log_path = run.run_dir / "metrics.jsonl"
        self.writer = self._tensorboard()

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
            return None
        return SummaryWriter(str(self.run.run_dir / "tb"), purge_step=self.run.step or None)

    def _append(self, record: dict):
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def log(self, m: dict, bar=None):
        step = self.run.step
        if bar is not None:
            bar.set_postfix(rec=f"{m['loss/reconstruction']:.3f}", adv_acc=f"{m['adversary/accuracy']:.2f}",
                            it_s=f"{m['steps_per_s']:.1f}")
        if self.writer:
            for k, v in m.items():
                self.writer.add_scalar(k, v, step)
        self._append({"step": step, **m})

    # -- validation ------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float:
        """L1 of rebuilding each held-out utterance from its content and the speaker vector of
        another (training) utterance of the same speaker: a conversion-like reconstruction."""
        r = self.run
        r.model.eval()
        errs = []
        for u in r.data.val_utts:
            i = r.data.store_index[u.path]
            mel = torch.from_numpy(r.data.store.segment(i, 0, 512).copy()).to(r.device)
            ref = torch.from_numpy(r.data.sampler.feature(r.data.sampler.by_speaker[u.speaker][0]).copy()).to(r.device)
            pitch = None
            if r.data.sampler.pitch is not None and r.data.sampler.pitch_row[i] >= 0:
                pitch = torch.from_numpy(r.data.sampler.pitch_segment(i, 0, mel.shape[1]).copy()).to(r.device)
            errs.append(losses.reconstruction(r.model.convert(mel, ref, pitch), mel).item())
        return float(np.mean(errs)) if errs else float("nan")

    def validate_and_keep_best(self):
        r = self.run
        val = self.validate()
        if self.writer:
            self.writer.add_scalar("val/reconstruction", val, r.step)
        self._append({"step": r.step, "val/reconstruction": val})
        if val < r.best_val:
            r.best_val = val
            r.checkpoints.save_best()

    # -- samples -------------------------------------------------------------------------------
    @torch.no_grad()
    def write_samples(self):
        """Spectrograms and audio of a swap of two utterances of different speakers (dev ones
        where there are)."""
        if not self.writer:
            return
        from .plots import mel_figure
        from .vocoder import get_vocoder
        r = self.run
        r.model.eval()
        pool = r.data.dev_utts or r.data.val_utts
        if len({u.speaker for u in pool}) < 2:
            return
        a = pool[0]
        b = next(u for u in pool if u.speaker != a.speaker)
        ma, mb = (torch.from_numpy(load_cached(cache_path(r.cache_dir, u.path, r.mel_cfg))[:, :400])
                  for u in (a, b))
        pa = pb = None
        if r.model.cfg.pitch_channels:
            pa, pb = (torch.from_numpy(compute_features(u.path, r.mel_cfg, "pitch")[:, :400]).to(r.device)
                      for u in (a, b))
        ab, ba = r.model.swap(ma.to(r.device), mb.to(r.device), pa, pb)
        ab, ba = ab.cpu(), ba.cpu()
        fig = mel_figure({"A": ma, "B": mb, "A's words, B's voice": ab, "B's words, A's voice": ba})
        self.writer.add_figure("samples/mels", fig, r.step)
        try:
            voc = get_vocoder(r.cfg.sample_vocoder, r.mel_cfg)
            for name, m in (("a_in_b", ab), ("b_in_a", ba)):
                self.writer.add_audio(f"samples/{name}", voc(m[None])[0], r.step, r.mel_cfg.sample_rate)
        except Exception as e:  # samples are a convenience; never stop training for them
            print(f"warning: could not vocode samples ({e})")

    def flush(self):
        if self.writer:
            self.writer.flush()

    def close(self):
        if self.writer:
            self.writer.close()
