"""Batches of training segments, drawn from a feature store (vc.data, vc.feature_store).

Batches hold ``batch_size // per_speaker`` different speakers (:class:`SegmentSampler`), drawn
for each step from (seed, rank, step) alone, in worker processes or in this one
(:func:`step_loader`).

Shapes: a batch is (B, n_mels, segment_frames); its pitch, where it has one, (B, 2, segment_frames).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .audio import is_lossy
from .augment import new_voices, perturb_speaker
from .data import InMemoryFeatures
from .features import MelConfig


class Batch(NamedTuple):
    """segments (B, n_mels, F) to rebuild; references (B, n_mels, F): another segment of the
    same speaker each; speakers (B,) speaker indices; reference_paths: the utterance of each
    reference (keys of per-utterance targets such as d-vectors). From :class:`StepBatches` also:
    perturbed, the voice-perturbed segments the content encoder reads, and rng_state, torch's
    CPU generator after drawing them (the step goes on from there). pitch (B, 2, F): the
    segments' vc.pitch features, where the sampler has them. lossy (B,) bool: the segment's file
    is lossy-coded (Ogg Opus/Vorbis, MP3: :func:`vc.audio.is_lossy`), its upper bands not the recording's."""
    segments: torch.Tensor
    references: torch.Tensor
    speakers: torch.Tensor
    reference_paths: list
    perturbed: torch.Tensor | None = None
    rng_state: torch.Tensor | None = None
    pitch: torch.Tensor | None = None
    lossy: torch.Tensor | None = None


class SegmentSampler:
    """Random fixed-length segments of ``batch_size // per_speaker`` different speakers, each
    speaker giving ``per_speaker`` consecutive items of the batch.

    Each item is a pair: a segment to reconstruct, and a *different* segment of the same speaker
    (another utterance when the speaker has one; else, where the utterance is long enough, a part
    of it that does not overlap the segment) from which the speaker vector is computed, so that
    the speaker vector cannot carry the words.

    ``features``: a :class:`vc.feature_store.FeatureStore` (or :class:`InMemoryFeatures`);
    ``indices``: its utterances to draw from (default all), in this order within each speaker.
    Utterances shorter than half a segment are not used. ``by_speaker[name]`` lists the feature
    indices of a speaker; :meth:`feature` reads one whole.

    ``pitch``: a store of the same utterances' vc.pitch features (matched by path; utterances
    it lacks are not used): each segment's pitch comes with the batch (``Batch.pitch``).
    """

    def __init__(self, features, segment_frames: int, seed: int = 0, indices=None, pitch=None):
        self.features, self.segment_frames, self.pitch = features, segment_frames, pitch
        self.pitch_row = None
        if pitch is not None:
            rows = {p: j for j, p in enumerate(pitch.paths)}
            self.pitch_row = [rows.get(p, -1) for p in features.paths]
        lists: dict[str, list[int]] = {}
        for i in (range(len(features)) if indices is None else indices):
            if self.pitch_row is not None and (self.pitch_row[i] < 0 or
                                               pitch.frames[self.pitch_row[i]] != features.frames[i]):
                continue
            if features.frames[i] >= segment_frames // 2:
                lists.setdefault(features.speakers[i], []).append(int(i))
        self.by_speaker = {s: np.asarray(v, dtype=np.int64) for s, v in lists.items()}
        self.speakers = sorted(self.by_speaker)
        if len(self.speakers) < 2:
            raise ValueError("training needs at least two speakers with usable audio")
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_cache(cls, utterances, cache_dir, cfg: MelConfig, segment_frames: int, seed: int = 0):
        """Today's loader: every feature of ``utterances`` in this process's memory."""
        return cls(InMemoryFeatures(utterances, cache_dir, cfg), segment_frames, seed)

    def feature(self, i: int) -> np.ndarray:
        return self.features.feature(i)

    def _crop(self, i: int, avoid: int | None = None) -> tuple[np.ndarray, int]:
        """A random segment of utterance ``i`` -> (segment, its start); with ``avoid`` (another
        segment's start) one that does not overlap that segment, where the utterance allows."""
        n, frames = self.segment_frames, int(self.features.frames[i])
        if frames < n:   # short clip: pad by repeating its edge
            return np.pad(self.features.feature(i), ((0, 0), (0, n - frames)), mode="edge"), 0
        # the starts of segments clear of [avoid, avoid + n): [0, avoid - n] and [avoid + n, frames - n]
        left = 0 if avoid is None else max(0, avoid - n + 1)
        right = 0 if avoid is None else max(0, frames - 2 * n - avoid + 1)
        if left + right:
            k = int(self.rng.integers(left + right))
            start = k if k < left else avoid + n + (k - left)
        else:            # no avoiding, or no room to
            start = int(self.rng.integers(0, frames - n + 1))
        return self.features.segment(i, start, n), start

    def pitch_segment(self, i: int, start: int, n: int) -> np.ndarray:
        """(2, n): the pitch of frames ``start:start+n`` of utterance ``i`` (unvoiced past its end)."""
        seg = self.pitch.segment(self.pitch_row[i], start, n)
        return np.pad(seg, ((0, 0), (0, n - seg.shape[1]))) if seg.shape[1] < n else seg

    def batch(self, batch_size: int, per_speaker: int = 1) -> Batch:
        n_spk = min(max(1, batch_size // per_speaker), len(self.speakers))
        chosen = self.rng.choice(len(self.speakers), size=n_spk, replace=False)
        segs, refs, idx, ref_paths, pitch, lossy = [], [], [], [], [], []
        for i in chosen:
            utts = self.by_speaker[self.speakers[i]]
            for _ in range(per_speaker):
                a = self.rng.integers(len(utts))
                b = (a + self.rng.integers(1, len(utts))) % len(utts) if len(utts) > 1 else a
                seg, start = self._crop(utts[a])
                segs.append(seg)
                lossy.append(is_lossy(self.features.paths[utts[a]]))
                if self.pitch is not None:
                    pitch.append(self.pitch_segment(utts[a], start, self.segment_frames))
                refs.append(self._crop(utts[b], avoid=start if b == a else None)[0])
                idx.append(i)
                ref_paths.append(self.features.paths[utts[b]])
        return Batch(torch.from_numpy(np.stack(segs)), torch.from_numpy(np.stack(refs)),
                     torch.from_numpy(np.asarray(idx, dtype=np.int64)), ref_paths,
                     pitch=torch.from_numpy(np.stack(pitch)) if pitch else None, lossy=torch.tensor(lossy))

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict):
        self.rng.bit_generator.state = state


def step_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of one step of one process."""
    return hash((seed, rank, step)) % 2 ** 62


class StepBatches(torch.utils.data.Dataset):
    """Item ``step``: that step's batch, a function of (seed, rank, step) alone, so any process
    (a loader worker, or this one) draws exactly the same: the sampler's generator is seeded
    with [seed, rank, step], torch's with :func:`step_seed`, then the segments are drawn, made
    new voices (``voice_warp``: each item's segment and reference warped alike) and
    voice-perturbed for the content encoder (vc.augment, on the CPU), and torch's CPU generator
    state is handed on."""

    def __init__(self, sampler: SegmentSampler, batch_size: int, per_speaker: int = 1, seed: int = 0,
                 rank: int = 0, warp: float = 0.0, tilt_db: float = 0.0, voice_warp: float = 0.0):
        self.sampler, self.batch_size, self.per_speaker = sampler, batch_size, per_speaker
        self.seed, self.rank, self.warp, self.tilt_db = seed, rank, warp, tilt_db
        self.voice_warp = voice_warp

    def __len__(self):
        return 2 ** 62

    def __getitem__(self, step: int) -> Batch:
        self.sampler.rng = np.random.default_rng([self.seed, self.rank, step])
        torch.manual_seed(step_seed(self.seed, self.rank, step))
        b = self.sampler.batch(self.batch_size, self.per_speaker)
        if self.voice_warp > 0:      # each item a new voice: its segment and reference warped alike
            segments, references = new_voices(b.segments, b.references, self.voice_warp)
            b = b._replace(segments=segments, references=references)
        perturbed = perturb_speaker(b.segments, self.warp, self.tilt_db)
        return b._replace(perturbed=perturbed, rng_state=torch.get_rng_state())


def _as_is(batch):
    return batch


def _quiet_worker(_):
    """A loader worker leaves SIGINT / SIGTERM to the training process, which finishes its step,
    saves, and then stops the workers."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def step_loader(batches: StepBatches, start: int, end: int, workers: int = 0, prefetch: int = 2):
    """The batches of steps ``start`` .. ``end - 1`` in order: ``workers`` processes draw them
    ahead of the training step (0: drawn here, when asked for)."""
    if workers <= 0:
        return (batches[s] for s in range(start, end))
    return iter(torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, end), num_workers=workers, collate_fn=_as_is,
        prefetch_factor=prefetch, worker_init_fn=_quiet_worker, persistent_workers=False))
