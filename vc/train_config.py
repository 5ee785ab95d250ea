"""A training run's settings as plain data (``vc train --config CONFIG.yaml``), and the learning
rate they give at each step. vc/configs/default.yaml holds the default values users train with;
the dataclass defaults are what a YAML leaves out; :meth:`TrainConfig.check` refuses settings that
cannot work together."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


@dataclass
class TrainConfig:
    model: dict = field(default_factory=dict)   # overrides of vc.model.ModelConfig
    segment_frames: int = 128                   # ~1.5 s
    batch_size: int = 16                        # per process; also the number of speakers per batch
    steps: int = 100_000
    lr: float = 5e-4
    lr_warmup: int = 1000
    lr_final: float = 0.1                       # cosine decay to lr * lr_final at ``steps``
    grad_clip: float = 5.0
    precision: str = "fp32"                     # or "bf16": autocast the networks (CPUs with AVX512-BF16, GPUs)
    clf_lr: float = 5e-4
    clf_steps: int = 1                          # adversary updates per autoencoder step, on its content
                                                # codes (Chou et al. 2018: 5)
    clf_pretrain: int = 0                       # a fresh run's adversary first trains alone on this many
                                                # batches of the (warm-started) encoder's content codes
    adv_loss: str = "uniform"                   # or "neg_ce"
    adv_weight: float = 0.05
    adv_warmup: int = 2000                      # adversary trains alone for these steps
    adv_ramp: int = 10_000                      # then its weight ramps up linearly
    warp: float = 0.15                          # speaker perturbation of the content input (0: off)
    tilt_db: float = 6.0
    voice_warp: float = 0.0                     # new voices: each item's segment and reference warped alike by one ratio in 1 +- this (0: off)
    per_speaker: int = 1                        # items of each speaker in a batch (batch_size // per_speaker speakers)
    speaker_contrast: float = 0.0               # weight: GE2E softmax on the speaker vectors of a batch's
                                                # speakers (vc.losses.speaker_contrast; needs per_speaker >= 2)
    cycle_content: float = 0.0                  # weight: the swapped output's content code = the source's
    cycle_speaker: float = 0.0                  # weight: the swapped output's speaker vector = the target's
    speaker_judge: str = "own"                  # who reads the swapped output's voice: "own" (the speaker
                                                # encoder), or frozen networks (vc.speaker_judge):
                                                # "resemblyzer", "campplus" or "resemblyzer+campplus"
                                                # (the loss is the mean over the judges)
    dvector_weight: float = 0.0                 # weight: distil Resemblyzer d-vectors into the speaker encoder
    asr_weight: float = 0.0                     # weight: Whisper's encoder hears the input's words in the
                                                # reconstruction and the swap (vc.asr_judge, frozen)
    asr_on_swap: bool = True                    # the Whisper loss also on the swap (else the reconstruction only)
    asr_words: float = 0.0                      # weight: Whisper's decoder reads the same words from the swap
                                                # as from its input (KL of next-token distributions along
                                                # Whisper's transcript of the input; vc.asr_judge.word_loss)
    asr_words_on: str = "swap"                  # which output Whisper's decoder reads: "swap", "recon" (the
                                                # reconstruction: words for the autoencoder itself, no pull
                                                # on the swap's voice) or "both" (the mean of the two)
    asr_norm: bool = False                      # compare Whisper features instance-normalised over time
                                                # (per channel), without each utterance's own statistics
    detail_weight: float = 0.0                  # weight: L1 of the reconstruction's differences along the mel
                                                # axis (vc.losses.spectral_detail): keep the harmonics sharp
    obstruent_weight: float = 0.0               # weight: L1 of the reconstruction's high bands in the input's
                                                # fricatives and bursts (vc.losses.obstruent)
    obstruent_on: str = "recon"                 # ... of "recon", "swap" (the swap keeps the input's timing,
                                                # so its consonants are the input's) or "both" (the mean)
    obstruent_centre: bool = False              # ... each band's mean over those frames taken out first:
                                                # the consonants' pattern, not their average colour (voice)
    obstruent_strict: bool = False              # ... fricatives proper only: frames whose high bands are as loud
                                                # as their low ones (not the partly sonorant vowels)
    band_tilt: float = 1.0                      # the reconstruction L1's weight of the highest mel band over the
                                                # lowest, linear between, mean 1 (vc.losses.reconstruction)
    lossy_band: int = 0                         # > 0: a segment from a lossy file (Opus, MP3: vc.audio.LOSSY)
                                                # is no target from this mel band up: the reconstruction L1
                                                # leaves those bands out, and the critic takes only lossless
                                                # segments for real (0: every file is a target in full)
    gan_weight: float = 0.0                     # weight: LSGAN + feature matching of a mel-patch critic (vc.discriminator)
    gan_lr: float = 2e-4
    gan_time_stride: int = 2                    # the critic's stride in time: 2 (8 x 8 patches) or 1 (every frame)
    gan_low_band: int = 0                       # the critic sees the mel bands from this one up (0: all; 40 of
                                                # 80: above ~1.7 kHz, where the voice's detail is lost)
    swap_strength: float = 1.0                  # the swap decodes with source + s * (other - source) of the
                                                # speaker vectors, s uniform in [1, swap_strength] per item
                                                # (> 1: trains the conversions that vc.convert's strength makes)
    swap_envelope: float = 0.0                  # weight: each frame of the swap has the envelope of its nearest
                                                # real frames of the target (vc.losses.envelope_match; what
                                                # vc.match does at inference, trained into the decoder)
    gan_speaker: bool = False                   # the critic also hears whose voice: its patches conditioned on the reference's Resemblyzer d-vector (a real segment with another's counts as fake)
    ema: float = 0.0                            # decay of a moving average of the weights kept beside them
                                                # (0: none; 0.999 ~ the last 1,000 steps; the start's weight
                                                # fades as ema ** steps). Export, `--model CKPT` and warm
                                                # starts use it; validation and best.pt the weights as trained
    split: str = "train"                        # the manifest split to train on
    val_per_speaker: int = 1                    # held-out utterances of speakers with >= 3
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    ckpt_minutes: float = 10.0                  # also checkpoint after this much wall time (0: off)
    max_minutes: float = 0.0                    # stop (with a checkpoint) after this much training time (0: off)
    keep_last: int = 3
    val_every: int = 1000
    sample_every: int = 5000
    sample_vocoder: str = "griffinlim"
    threads: int = 0                            # torch threads per process (0: all cores / nproc)
    cache_dir: str = ""                         # default: RUN_DIR/cache
    store_dtype: str = "float32"                # the feature store's numbers (vc.feature_store): or "float16" (half the disk and page cache)
    num_workers: int = 0                        # loader processes drawing batches ahead of the step (0: drawn in the training process)
    init_from: str = ""                         # warm start: copy every same-shaped weight of this checkpoint
    init_fresh: list = field(default_factory=list)  # ... except these modules (name prefixes, e.g. speaker_encoder): they start fresh

    @classmethod
    def from_yaml(cls, path) -> "TrainConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**data)

    def check(self) -> None:
        """Refuse settings that cannot work together (a ValueError naming them), before any data is read."""
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision: 'fp32' or 'bf16', not {self.precision!r}")
        for name in ("asr_words_on", "obstruent_on"):
            if getattr(self, name) not in ("swap", "recon", "both"):
                raise ValueError(f"{name}: 'swap', 'recon' or 'both', not {getattr(self, name)!r}")
        if self.speaker_judge not in ("own", "resemblyzer", "campplus", "resemblyzer+campplus"):
            raise ValueError("speaker_judge: 'own', 'resemblyzer', 'campplus' or 'resemblyzer+campplus', "
                             f"not {self.speaker_judge!r}")
        if self.voice_warp > 0 and self.dvector_weight > 0:
            raise ValueError("voice_warp and dvector_weight: the stored d-vectors are of the unwarped clips")
        if self.lossy_band < 0:
            raise ValueError(f"lossy_band: a mel band (0: off), not {self.lossy_band!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema: a decay from 0 (none) up to but not including 1, not {self.ema!r}")
        if self.speaker_contrast > 0 and (self.per_speaker < 2 or self.voice_warp > 0):
            raise ValueError("speaker_contrast compares the items of one speaker: it needs per_speaker >= 2 "
                             "and no voice_warp (which makes each item a new voice)")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``lr_warmup`` steps, then a cosine from ``lr`` to ``lr * lr_final`` at ``steps``."""
    if step < cfg.lr_warmup:
        return cfg.lr * (step + 1) / cfg.lr_warmup
    t = min(1.0, (step - cfg.lr_warmup) / max(1, cfg.steps - cfg.lr_warmup))
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t)))
