"""One checkpoint file: model weights, model config, feature config, and (optionally) training state.

Layout of the dict saved with ``torch.save`` (plain tensors, numbers, strings, lists, dicts, so
that it loads with ``torch.load(..., weights_only=True)``; nothing is ever unpickled):

    format: "vc-checkpoint", version: 1
    model_config: dict (vc.model.ModelConfig), mel_config: dict (vc.features.MelConfig)
    model: state_dict of vc.model.VoiceConverter
    train: {step, config, speakers, classifier, optimizers, rng, ...}  (absent in exported models);
           with ``ema``: a moving average of the model's weights, which :func:`weights` prefers
    meta:  free-form facts (wall time, hardware, data) for the model card

Files are written to a temporary name and renamed, so a kill never leaves a half-written file.
"""
from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import torch

from .features import MelConfig
from .files import atomic_path
from .model import ModelConfig, VoiceConverter

FORMAT, VERSION = "vc-checkpoint", 1


class CheckpointError(ValueError):
    """A file that is not a usable vc checkpoint; ``str(err)`` names the file and the problem."""


def save_checkpoint(path, model: VoiceConverter, mel_cfg: MelConfig, train: dict | None = None,
                    meta: dict | None = None) -> Path:
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, "model_config": model.cfg.to_dict(),
             "mel_config": mel_cfg.to_dict(),
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "meta": meta or {}}
    if train is not None:
        state["train"] = train
    with atomic_path(path, suffix=".tmp") as tmp:      # usual permissions; errors name ``path``
        torch.save(state, tmp)
    return path


def read_checkpoint(path, expect_mel: MelConfig | None = MelConfig()) -> dict:
    """Load and validate; raises CheckpointError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {first})") from None
    except Exception as e:  # pickle errors of files that are not torch checkpoints at all
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a vc checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vc checkpoint (no '{FORMAT}' marker)")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this vc "
                              f"understands ({VERSION}); upgrade vc")
    if expect_mel is not None and MelConfig.from_dict(state["mel_config"]) != expect_mel:
        raise CheckpointError(f"{path}: trained on other features ({state['mel_config']}) than "
                              f"this vc computes ({expect_mel.to_dict()})")
    return state


def weights(state: dict, ema: bool = True) -> dict:
    """The weights a checkpoint runs with: a training checkpoint's moving average of the weights
    (``train["ema"]``, kept when the run's ``TrainConfig.ema`` > 0) unless ``ema`` is False, else
    ``model``, the weights as trained (what ``--resume`` continues from)."""
    if ema and "ema" in state.get("train", {}):
        return state["train"]["ema"]
    return state["model"]


def load_model(path, device: str = "cpu", ema: bool = True) -> tuple[VoiceConverter, MelConfig, dict]:
    """-> (model in eval mode, its feature config, the raw checkpoint dict). The model holds
    :func:`weights`: a training run's moving average when it kept one and ``ema``."""
    state = read_checkpoint(path)
    model = VoiceConverter(ModelConfig.from_dict(state["model_config"]))
    try:
        model.load_state_dict(weights(state, ema))
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model config ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), MelConfig.from_dict(state["mel_config"]), state


def average_models(paths, ema: bool = True) -> tuple[VoiceConverter, MelConfig, list[dict]]:
    """Uniform weight average of checkpoints of one architecture: a "model soup" (Wortsman et al.
    2022). It works for fine-tunes of one start (e.g. several seeds or recipes continued from the
    same model), whose weights stay in one basin; unrelated models average to noise.
    Each input contributes its :func:`weights` (``ema`` as there). One architecture, except that
    some inputs may have frame attention (vc.frame_attention.FrameAttention) or Whisper's content
    input (``asr_content``) where the others have none: its weights are then the mean over the
    inputs that have it (a model without it decodes as one whose gate or projection is shut, so its
    weights do not dilute it). So may a quantised content code (``vq_codes``): the average then
    quantises with the codebook of the inputs that have one.
    -> (averaged model in eval mode, feature config, each input's raw checkpoint dict)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise CheckpointError("no checkpoints to average")
    states = [read_checkpoint(p) for p in paths]
    mel_cfg = MelConfig.from_dict(states[0]["mel_config"])
    cfgs = [ModelConfig.from_dict(s["model_config"]) for s in states]
    cfg = next((c for c in cfgs if c.frame_attention), cfgs[0])
    reader = next((c for c in cfgs if c.asr_content), cfgs[0])
    quantiser = next((c for c in cfgs if c.vq_codes), cfgs[0])
    cfg = replace(cfg, asr_content=reader.asr_content, asr_layers=reader.asr_layers,
                  vq_codes=quantiser.vq_codes, vq_beta=quantiser.vq_beta)
    for path, c in zip(paths, cfgs):
        added = {} if c.asr_content else dict(asr_content=cfg.asr_content, asr_layers=cfg.asr_layers)
        if not c.vq_codes:
            added.update(vq_codes=cfg.vq_codes, vq_beta=cfg.vq_beta)
        if not c.frame_attention:
            added.update(frame_attention=cfg.frame_attention, frame_attention_band=cfg.frame_attention_band)
        if replace(c, **added) != cfg:
            raise CheckpointError(f"{path}: another architecture than {paths[cfgs.index(cfg)]}, cannot "
                                  f"average ({c.to_dict()} vs {cfg.to_dict()})")
    model = VoiceConverter(cfg)
    mean, each = {}, [weights(s, ema) for s in states]
    for name, value in model.state_dict().items():
        have = [w[name] for w in each if name in w]
        if not have:
            raise CheckpointError(f"{paths[0]}: no input has the weights {name}")
        mean[name] = (torch.stack([v.float() for v in have]).mean(0).to(have[0].dtype)
                      if have[0].is_floating_point() else have[0])
    try:
        model.load_state_dict(mean)
    except RuntimeError as e:
        raise CheckpointError(f"{paths[0]}: weights do not fit the model config ({str(e).splitlines()[0]})") from None
    return model.eval(), mel_cfg, states


def _steps(state: dict) -> int | None:
    """The training steps behind one input of an average: a run's step, an export's `step`, or,
    for an average itself, the sum of its inputs' steps (None where unknown)."""
    if "train" in state:
        return int(state["train"]["step"])
    meta = state.get("meta", {})
    if meta.get("step") is not None:
        return int(meta["step"])
    steps = meta.get("steps")
    return sum(steps) if steps and all(isinstance(s, int) for s in steps) else None


def export_checkpoint(src, dst, meta: dict | None = None, ema: bool = True) -> Path:
    """Strip training state (optimisers, adversary): the small file that inference needs. ``src``
    may be a list of checkpoints: then their weight average (``average_models``) is exported.
    A training checkpoint's moving average of the weights is what is exported, unless ``ema`` is
    False (then the weights as trained); ``meta["weights"]`` says which."""
    if isinstance(src, (list, tuple)) and len(src) == 1:
        src = src[0]
    if isinstance(src, (list, tuple)):
        model, mel_cfg, states = average_models(src, ema)
        info = {"average_of": [str(p) for p in src], "steps": [_steps(s) for s in states]}
        walls = {str(Path(p).resolve()): s.get("meta", {}).get("wall_seconds") for p, s in zip(src, states)}
        if all(isinstance(w, (int, float)) for w in walls.values()):   # an input given twice trained once
            info["wall_seconds"] = round(float(sum(walls.values())), 1)  # the training of all the inputs
    else:
        model, mel_cfg, state = load_model(src, ema=ema)
        states = [state]
        info = dict(state.get("meta", {}))
        if "train" in state:
            info.setdefault("step", int(state["train"]["step"]))
    averaged = [ema and "ema" in s.get("train", {}) for s in states]
    if any(averaged):
        info["weights"] = ("moving average" if all(averaged) else
                           f"moving average in {sum(averaged)} of {len(averaged)} inputs")
    info.update(meta or {})
    return save_checkpoint(dst, model, mel_cfg, meta=info)
