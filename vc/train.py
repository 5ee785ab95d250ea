"""Training: ``vc train --config CONFIG.yaml --data SOURCE --out RUN_DIR [--resume]``.

One step, on a batch of segments of ``batch_size // per_speaker`` speakers:
  1. the content encoder reads a speaker-perturbed copy of each segment (vc.augment), the
     speaker encoder reads *another* segment of the same speaker, the decoder rebuilds the
     original segment (with ``voice_warp``, both segments first become a new voice, warped alike;
     with ``model.pitch_channels``, from the segment's own pitch too: vc.pitch);
  2. the adversary (vc.model.SpeakerClassifier) learns to name the speaker from the detached
     content code;
  3. the autoencoder minimises reconstruction + lambda(step) * adversarial, lambda following the
     Chou et al. 2018 schedule (vc.losses.adversarial_weight), plus optional terms on what users
     hear, a swap within the batch (each content code decoded with another speaker's vector):
     ``cycle_content`` (the swap's content code is the source's) and ``cycle_speaker`` (a frozen
     speaker network, the model's own or Resemblyzer and/or CAM++ via vc.speaker_judge, hears
     the target in it); ``swap_envelope`` (each frame of the swap takes the spectral envelope of its nearest
     real frames of the target speaker: vc.match's inference step as a loss); and
     ``dvector_weight``: the speaker vector predicts the Resemblyzer d-vector of its utterance
     (vc.dvectors: a speaker space learned from thousands of speakers, distilled);
     ``speaker_contrast``: with ``per_speaker`` >= 2, each speaker vector names its own speaker
     among the batch's (GE2E softmax), so a voice is one vector across utterances;
     ``asr_weight``: Whisper tiny's encoder (vc.asr_judge, frozen) gives the reconstruction and
     the swap the features of the input segment, a content loss that weighs what carries words;
     ``asr_words``: Whisper's text decoder reads the swap as it reads the input segment (its
     next-token distributions along its own transcript of the input): words, without the voice;
     ``detail_weight``: the reconstruction's differences along the mel axis match the input's
     (vc.losses.spectral_detail), ``band_tilt`` weighs its upper bands more, ``obstruent_weight``
     weighs the high bands of the input's fricatives and bursts (vc.losses.obstruent) in the
     reconstruction, the swap or both (``obstruent_on``; ``obstruent_centre``: their pattern, not
     their average colour), and
     ``gan_weight``: a mel-patch critic (vc.discriminator),
     both against over-smoothed output; with ``gan_speaker`` the critic also hears whose voice
     each output should be (the reference's Resemblyzer d-vector, the swap's target's), and a
     real segment given another speaker's d-vector is one more fake for it; ``lossy_band``: a
     segment of a lossy file (Ogg Opus, MP3) is no target from that mel band up (neither for the
     L1 nor as the critic's real example), so the decoder does not learn the codec's upper bands;
     with ``model.vq_codes`` the content code is vector-quantised (vc.quantize) and the
     quantiser's commitment term joins the loss (its codebook starts at k-means centroids of
     the first batches' content codes and follows the codes by moving averages)
     (the loss of 1 and 3 is composed in vc.train_objective);
  4. the adversary (``clf_steps`` updates) and the critic take their own steps. A warm start's
     adversary is fresh; ``clf_pretrain`` trains it alone first, so that it pushes from step 0.

Randomness is derived from (seed, rank, step), so a resumed run draws exactly the batches and
perturbations that the uninterrupted run would have drawn. Checkpoints (vc.checkpoint) carry
model, adversary, optimisers, step and config; they are written atomically every
``ckpt_every`` steps (the last ``keep_last`` kept, plus ``best.pt`` on validation loss).

Several processes: ``torchrun --nproc_per_node N -m vc train ...`` (DistributedDataParallel;
gloo on CPU, nccl on GPUs). Each rank draws its own batches; gradients are averaged.
"""
from __future__ import annotations

import gc
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from . import discriminator, losses, quantize
from .augment import perturb_speaker
from .batches import StepBatches, step_loader, step_seed
from .features import MelConfig
from .files import atomic_open
from .model import ModelConfig, SpeakerClassifier, VoiceConverter, count_parameters
from .train_checkpoints import RunCheckpoints, StopSignals, checkpoints
from .train_config import DEFAULT_CONFIG, TrainConfig, learning_rate
from .train_data import RunData
from .train_objective import RunObjective
from .train_reports import RunReports

MAX_NONFINITE_STEPS = 20     # steps in a row whose loss or gradient is not finite: the run has diverged


class TrainingDiverged(RuntimeError):
    """Many steps in a row gave a non-finite loss or gradient; ``str(err)`` is one line."""


class Run:
    """One training process: its networks and optimisers, one step (:meth:`train_step`, whose
    loss is ``self.objective``: vc.train_objective.RunObjective) and the loop (:meth:`train`). Its data
    is :class:`vc.train_data.RunData` (``self.data``: stores, validation split, sampler). Checkpoints are
    :class:`vc.train_checkpoints.RunCheckpoints` (``self.checkpoints``); logs, validation and
    samples :class:`vc.train_reports.RunReports` (``self.reports``, rank 0)."""

    def __init__(self, cfg: TrainConfig, data, run_dir, device="cpu", resume=False, progress=True):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if str(device).startswith("cuda") and self.distributed:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = torch.device(device)
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // self.world))
        self.mel_cfg = MelConfig()
        if checkpoints(self.run_dir) and not resume:      # before any slow work
            raise ValueError(f"{self.run_dir} already holds checkpoints: pass --resume to continue "
                             f"that run, or choose another --out")
        cfg.check()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(cfg.cache_dir or self.run_dir / "cache")
        self.data = RunData(self, data)
        self.speakers = self.data.sampler.speakers
        self.batches = StepBatches(self.data.sampler, cfg.batch_size, cfg.per_speaker, cfg.seed, self.rank,
                                   cfg.warp, cfg.tilt_db, cfg.voice_warp)
        # the loss of a step, and the frozen judges it needs (built before the seeded networks)
        self.objective = RunObjective(self, self.data.train_utts)

        # model, adversary, optimisers
        self.model_cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **cfg.model})
        torch.manual_seed(cfg.seed)
        self.model = VoiceConverter(self.model_cfg).to(self.device)
        self.clf = SpeakerClassifier(self.model_cfg, len(self.speakers)).to(self.device)
        self.critic = discriminator.MelPatchCritic(mel_mean=self.model_cfg.mel_mean, mel_std=self.model_cfg.mel_std,
                                                   speaker_dim=256 if self.objective.voice_judge else 0,
                                                   time_stride=cfg.gan_time_stride,
                                                   low_band=cfg.gan_low_band).to(self.device)
        self.critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=cfg.gan_lr, betas=(0.5, 0.9))
        # training-only head: speaker vector -> Resemblyzer d-vector (distillation)
        self.dvec_head = torch.nn.Linear(self.model_cfg.speaker_dim, 256).to(self.device)
        self.opt = torch.optim.AdamW([*self.model.parameters(), *self.dvec_head.parameters()], lr=cfg.lr,
                                     betas=(0.9, 0.99), weight_decay=1e-4)
        self.clf_opt = torch.optim.AdamW(self.clf.parameters(), lr=cfg.clf_lr, betas=(0.9, 0.99))
        self.step, self.best_val, self.started = 0, float("inf"), time.time()
        self.elapsed_before = 0.0
        self.nonfinite_in_a_row = 0      # steps skipped for a non-finite loss or gradient, in a row
        self.ema = None                  # {name: tensor}: the moving average of the weights (cfg.ema)
        self.checkpoints = RunCheckpoints(self)
        if not (resume and self.checkpoints.resume()) and cfg.init_from:
            self.checkpoints.warm_start(cfg.init_from)
        if self.step == 0 and self.model.content_encoder.vq is not None:   # before DDP shares rank 0's
            self.init_codebook()
        if cfg.ema > 0 and self.ema is None:     # starts at the weights the run starts from
            self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.rank == 0:
            with atomic_open(self.run_dir / "config.yaml") as f:
                f.write(yaml.safe_dump(asdict(cfg), sort_keys=False))
        self.ae = DDP(self.model) if self.distributed else self.model
        self.clf_ddp = DDP(self.clf) if self.distributed else self.clf
        self.critic_ddp = DDP(self.critic) if self.distributed and cfg.gan_weight > 0 else self.critic
        self.reports = RunReports(self) if self.rank == 0 else None

    def _barrier(self):
        if self.distributed:
            dist.barrier()

    def elapsed(self) -> float:
        """Training time of the run, resumed parts included."""
        return self.elapsed_before + time.time() - self.started

    def save(self):
        return self.checkpoints.save()

    def validate(self) -> float:
        return self.reports.validate()

    # -- one step ------------------------------------------------------------------------------
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def draw(self, step: int, batch=None):
        """The batch of ``step`` (drawn here unless a loader worker drew it: ``batch``), with
        torch's generators left as that step's draws left them, for the rest of the step: every
        device seeded from (seed, rank, step), the CPU one past the perturbations."""
        batch = self.batches[step] if batch is None else batch
        torch.manual_seed(step_seed(self.cfg.seed, self.rank, step))
        torch.set_rng_state(batch.rng_state)
        return batch

    def content_input(self, batch) -> torch.Tensor:
        """What the content encoder reads in a step: the batch's voice-perturbed segments
        (B, n_mels, F), perturbed here unless the loader did it."""
        if batch.perturbed is not None:
            return batch.perturbed.to(self.device)
        return perturb_speaker(batch.segments.to(self.device), self.cfg.warp, self.cfg.tilt_db)

    def train_step(self, batch=None) -> dict:
        """One step on the batch of step ``self.step`` (``batch``: that batch, drawn by a loader)."""
        cfg, step = self.cfg, self.step
        batch = self.draw(step, batch)
        self.model.train()
        self.clf.train()
        for g in self.opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        loss, content, spk, m = self.objective(batch, step)
        if not self._finite(loss):
            return self._skip_step(m, "loss")

        # the autoencoder rebuilds, fools the adversary, and keeps its conversions honest
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.distributed and self.objective.dvectors is not None:   # the head is not inside DDP
            for p in self.dvec_head.parameters():
                dist.all_reduce(p.grad)
                p.grad /= self.world
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if not self._finite(gnorm):
            self.opt.zero_grad(set_to_none=True)
            return self._skip_step(m, "gradient")
        self.nonfinite_in_a_row = 0
        self.opt.step()
        if self.ema is not None:         # ema <- ema + (1 - decay) * (weights - ema)
            with torch.no_grad():
                for name, value in self.model.state_dict().items():
                    avg = self.ema[name]
                    avg.lerp_(value, 1 - cfg.ema) if avg.is_floating_point() else avg.copy_(value)

        # then the adversary learns to name the speaker from the (detached) content code
        for _ in range(cfg.clf_steps):
            logits, clf_loss = self.adversary_step(content.detach(), spk)

        # and the critic learns to tell real segments from the outputs
        if cfg.gan_weight > 0:
            real_mel, fakes, voices = batch.segments.to(self.device), self.objective.fakes, self.objective.voices
            if voices[0] is not None:    # a real segment heard as another speaker's voice is fake too
                fakes, voices = [*fakes, real_mel], [*voices, voices[0].roll(cfg.per_speaker, 0)]
            real_voice, lossless = voices[0], self.objective.lossless
            if lossless is not None:     # only lossless segments are real (lossy_band)
                real_mel = real_mel[lossless]
                real_voice = None if real_voice is None else real_voice[lossless]
            with self.autocast():
                real = self.critic_ddp(real_mel, real_voice)[0].float()
                fake = self.critic_ddp(torch.cat(fakes), None if voices[0] is None else torch.cat(voices))[0].float()
            crit_loss = discriminator.critic_loss(real, fake)
            self.critic_opt.zero_grad(set_to_none=True)
            crit_loss.backward()
            self.critic_opt.step()
            m["loss/critic"] = crit_loss
        self.step += 1
        acc = (logits.argmax(1) == spk).float().mean()
        return {**{k: (v.item() if torch.is_tensor(v) else v) for k, v in m.items()}, "loss/classifier": clf_loss.item(),
                "loss/total": loss.item(), "adversary/accuracy": acc.item(), "lr": learning_rate(cfg, step),
                "grad_norm": float(gnorm)}

    def _finite(self, value: torch.Tensor) -> bool:
        """Is ``value`` finite in every process (they all skip a step, or none does)?"""
        ok = torch.isfinite(value.detach()).all().float().reshape(1)
        if self.distributed:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def _skip_step(self, m: dict, what: str) -> dict:
        """A step whose ``what`` (loss or gradient) is not finite, an overflow on one batch, changes
        no weight: no network takes its update, the run goes on with the next batch. After
        MAX_NONFINITE_STEPS such steps in a row the run has diverged: it saves a checkpoint (of
        finite weights) and stops with TrainingDiverged."""
        self.step += 1
        self.nonfinite_in_a_row += 1
        if self.rank == 0:
            tqdm.write(f"step {self.step - 1}: the {what} is not finite; the step is skipped")
        if self.nonfinite_in_a_row >= MAX_NONFINITE_STEPS:
            self.save()
            raise TrainingDiverged(
                f"training diverged: the loss or gradient was not finite in {self.nonfinite_in_a_row} steps in "
                f"a row, up to step {self.step - 1}; the weights saved at step {self.step} are those of the last "
                f"finite step: resume from an earlier checkpoint with a lower lr, or with precision: fp32")
        nan = float("nan")
        return {**{k: (v.item() if torch.is_tensor(v) else v) for k, v in m.items()}, "loss/classifier": nan,
                "loss/total": nan, "adversary/accuracy": nan, "lr": learning_rate(self.cfg, self.step - 1),
                "grad_norm": nan, "skipped": 1.0}

    def adversary_step(self, content: torch.Tensor, spk: torch.Tensor):
        """One update of the adversary on detached content codes (B, content_dim, T') of speakers
        ``spk`` (B,) -> (its logits before the update, its loss)."""
        logits = self.clf_ddp(content)
        clf_loss = losses.classifier(logits, spk)
        self.clf_opt.zero_grad(set_to_none=True)
        clf_loss.backward()
        self.clf_opt.step()
        return logits, clf_loss

    def pretrain_adversary(self, n: int) -> dict:
        """Exported models carry no adversary, so a warm start's is fresh and, at one update per
        step, stays near chance for thousands of steps: its verdict then pushes nothing. Before
        the first autoencoder step it trains alone on ``n`` batches (those of steps 0..n-1) of the
        encoder's content codes, the autoencoder untouched -> its loss and accuracy on the last."""
        self.clf.train()
        bar = tqdm(range(n), desc="adversary", disable=self.rank != 0 or not self.progress, unit="batch")
        for i in bar:
            batch = self.draw(i)
            with torch.no_grad(), self.autocast():
                content = self.model.encode_content(self.model._pad(self.content_input(batch))).float()
            spk = batch.speakers.to(self.device)
            logits, loss = self.adversary_step(content, spk)
        acc = (logits.argmax(1) == spk).float().mean().item()
        bar.close()
        if self.rank == 0:
            print(f"adversary pretrained on {n} batches: loss {loss.item():.2f} (chance "
                  f"{math.log(len(self.speakers)):.2f}), accuracy {acc:.0%} on the last")
        return {"loss/classifier": loss.item(), "adversary/accuracy": acc}

    def init_codebook(self, batches: int = 16):
        """A run's first step starts the quantiser's codebook (``model.vq_codes``) at k-means
        centroids of the content codes of ``batches`` training batches (those of steps 0..), so
        that every code stands for frames from the start (vc.quantize)."""
        codes = []
        for i in range(batches):
            batch = self.draw(i)
            with torch.no_grad(), self.autocast():
                z = self.model.content_encoder.continuous(self.model._pad(self.content_input(batch)))
            codes.append(z.float().transpose(1, 2).reshape(-1, z.shape[1]).cpu())
        vq = self.model.content_encoder.vq
        vq.start(quantize.kmeans(torch.cat(codes), vq.codebook.shape[0], seed=self.cfg.seed).to(vq.codebook.device))
        if self.rank == 0:
            print(f"codebook: {vq.codebook.shape[0]} codes from k-means over {sum(map(len, codes))} content frames")

    # -- the loop ------------------------------------------------------------------------------
    def train(self, steps: int | None = None):
        """Train until step ``steps`` (default: the config's), ``max_minutes`` of training time,
        or SIGINT / SIGTERM; each of them ends with a checkpoint, so ``--resume`` goes on.
        Batches come from ``num_workers`` loader processes (0: drawn in this one)."""
        cfg = self.cfg
        end = steps if steps is not None else cfg.steps
        if self.rank == 0:
            print(f"model: {count_parameters(self.model) / 1e6:.2f}M parameters, adversary "
                  f"{count_parameters(self.clf) / 1e6:.2f}M, {len(self.speakers)} speakers, "
                  f"{self.world} process(es) on {self.device}")
        if self.step == 0 and cfg.clf_pretrain > 0:
            self.pretrain_adversary(cfg.clf_pretrain)
        bar = tqdm(total=end, initial=self.step, disable=self.rank != 0 or not self.progress,
                   unit="step", dynamic_ncols=True)
        t0, s0 = time.time(), self.step
        last_save = time.time()
        stop = StopSignals()
        loader = step_loader(self.batches, self.step, end, cfg.num_workers)
        try:
            with stop:
                while self.step < end:
                    m = self.train_step(next(loader))
                    bar.update()
                    # read the signal once: one arriving later in this step is seen by the next
                    # (read twice, it could stop the run after the save was decided against)
                    signal_seen = stop.received
                    out_of_time = cfg.max_minutes > 0 and self.elapsed() >= 60 * cfg.max_minutes
                    stopping = bool(signal_seen) or out_of_time
                    due = (self.step % cfg.ckpt_every == 0 or self.step == end or stopping
                           or (cfg.ckpt_minutes > 0 and time.time() - last_save >= 60 * cfg.ckpt_minutes))
                    if self.distributed:   # every rank must agree on when to save and stop
                        flags = torch.tensor([float(due), float(stopping)])
                        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                        due, stopping = bool(flags[0]), bool(flags[1])
                    if self.reports:
                        if self.step % cfg.log_every == 0:
                            m["steps_per_s"] = (self.step - s0) / max(1e-9, time.time() - t0)
                            t0, s0 = time.time(), self.step
                            self.reports.log(m, bar)
                        if self.step % cfg.val_every == 0 or self.step == end:
                            self.reports.validate_and_keep_best()
                        if cfg.sample_every and self.step % cfg.sample_every == 0:
                            self.reports.write_samples()
                    if due:
                        self.save()
                        last_save = time.time()
                        if self.reports:
                            self.reports.flush()
                        self._barrier()
                    if stopping:
                        if self.rank == 0:
                            why = (f"signal {signal_seen}" if signal_seen else f"max_minutes={cfg.max_minutes}"
                                   if out_of_time else "another process stopped")
                            print(f"stopped at step {self.step} ({why}); checkpoint saved: --resume continues")
                        break
        finally:
            getattr(loader, "_shutdown_workers", lambda: None)()   # loader processes end with the loop
        bar.close()
        if self.reports:
            self.reports.close()
        if self.distributed:
            self._check_replicas()
        return self

    def _check_replicas(self):
        """Every process must hold the same weights: write each rank's checksum (rank 0)."""
        flat = torch.cat([p.detach().double().flatten().cpu() for p in self.model.parameters()])
        mine = torch.tensor([flat.sum().item(), (flat * torch.arange(flat.numel(), dtype=torch.float64)).sum().item()])
        gathered = [torch.zeros_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine)
        if self.rank == 0:
            with atomic_open(self.run_dir / "replicas.json") as f:
                f.write(json.dumps([g.tolist() for g in gathered]))


def main(config, data, out, resume=False, device="cpu", steps=None, progress=True):
    """The ``vc train`` command. Without ``config``: the run's own config.yaml when resuming,
    else vc/configs/default.yaml (the one source of default settings)."""
    cfg = TrainConfig.from_yaml(config or DEFAULT_CONFIG)
    out = Path(out)
    if resume and (out / "config.yaml").is_file() and not config:
        cfg = TrainConfig.from_yaml(out / "config.yaml")
    run = Run(cfg, data, out, device=device, resume=resume, progress=progress)
    run.train(steps)
    if run.distributed:
        dist.barrier()                 # no rank closes its connections while another still talks
        # the DDP wrappers hold the process group and its worker threads: let them go while the
        # interpreter is whole, not in its finalisation (a rare SIGABRT at exit in CI, s38)
        run.ae, run.clf_ddp, run.critic_ddp = run.model, run.clf, run.critic
        gc.collect()
        dist.destroy_process_group()
    return run
