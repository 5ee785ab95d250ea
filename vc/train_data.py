"""The training data of one run (vc.train.Run): the feature stores of the training split (rank 0
builds what is missing, the other ranks open them), the held-out validation utterances, a few dev
utterances for audio samples, and the sampler that the step's batches are drawn from.
"""
from __future__ import annotations

import time

from .batches import SegmentSampler
from .data import build_cache, find_utterances, split_validation, training_store


class RunData:
    """``store`` (log-mels) and ``pitch_store`` (for a decoder that reads pitch, else None) of the
    ``cfg.split`` utterances of ``data``; ``store_index`` maps a path to its store row;
    ``train_utts`` and ``val_utts`` (``val_per_speaker`` held out per speaker); ``dev_utts``
    (up to 8, cached, for samples; rank 0 only); ``sampler`` draws segments of ``train_utts``."""

    def __init__(self, run, data):
        self.run = run
        cfg = run.cfg
        utts = find_utterances(data)
        self.dev_utts = [u for u in utts if u.split == "dev"]
        utts = [u for u in utts if u.split == cfg.split]
        if not utts:
            raise ValueError(f"{data}: no utterances in split '{cfg.split}'")
        t0 = time.time()
        self.store = self._store(utts, "mel")
        if run.rank == 0 and self.dev_utts:
            self.dev_utts, _ = build_cache(self.dev_utts[:8], run.cache_dir, run.mel_cfg, progress=False)
        self.store_index = {p: i for i, p in enumerate(self.store.paths)}
        # the decoder reads the source's pitch: its store too
        self.pitch_store = self._store(utts, "pitch") if cfg.model.get("pitch_channels", 0) else None
        usable = [u for u in utts if u.path in self.store_index]
        self.train_utts, self.val_utts = split_validation(usable, cfg.val_per_speaker, cfg.seed)
        self.sampler = SegmentSampler(self.store, cfg.segment_frames, cfg.seed,
                                      indices=[self.store_index[u.path] for u in self.train_utts],
                                      pitch=self.pitch_store)
        if run.rank == 0:
            hours = run.mel_cfg.frames_to_seconds(int(self.store.frames.sum())) / 3600
            print(f"features: {len(self.store)} utterances, {hours:.2f} h, "
                  f"from {self.store.root} ({time.time() - t0:.1f} s)")

    def _store(self, utts, kind: str):
        """The ``kind`` feature store of ``utts``: rank 0 builds what is missing, then the others open it."""
        run = self.run
        if run.rank == 0:
            store = training_store(utts, run.cache_dir, run.mel_cfg, run.cfg.store_dtype, progress=run.progress,
                                   kind=kind)
        run._barrier()
        if run.rank != 0:
            store = training_store(utts, run.cache_dir, run.mel_cfg, run.cfg.store_dtype, progress=False, kind=kind)
        return store
