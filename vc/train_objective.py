"""The autoencoder's training loss, one batch at a time: the frozen judges some of its terms
need (Resemblyzer, Whisper's encoder, stored d-vectors) and the sum of the terms that
``TrainConfig`` switches on (the list is in vc.train's docstring). :class:`vc.train.Run` holds the
networks and optimisers and takes the steps; this file says what a step minimises.

Shapes: a batch's segments and references (B, n_mels, T) log-mel; the swap decodes each content
code with the speaker vector ``per_speaker`` items further on (another speaker's).
"""
from __future__ import annotations

import torch

from . import discriminator, losses, quantize
from .model import instance_norm


class RunObjective:
    """``objective(batch, step)`` -> (loss, content code, speaker indices, metrics) for ``run``
    (a :class:`vc.train.Run`); it also keeps that batch's outputs for the critic's own step
    (``fakes``, and ``voices``: whose voice each should be, with ``gan_speaker``)."""

    def __init__(self, run, train_utts):
        self.run = run
        cfg = run.cfg
        self.fakes, self.voices, self.lossless = [], [], None
        self.dvectors = None
        # frozen speaker networks for who hears the swap's voice (cycle_speaker), and one Resemblyzer
        # for whose voice each critic patch should be (gan_speaker)
        names = cfg.speaker_judge.split("+") if cfg.cycle_speaker > 0 and cfg.speaker_judge != "own" else []
        voice_critic = cfg.gan_speaker and cfg.gan_weight > 0
        resemblyzer = None
        if "resemblyzer" in names or voice_critic:
            from .speaker_judge import ResemblyzerJudge
            resemblyzer = ResemblyzerJudge(run.mel_cfg).to(run.device)
        self.judges = {}                 # {name: frozen network}, empty: the model's own speaker encoder
        for name in names:
            if name == "campplus":
                from .speaker_judge import CamppJudge
                self.judges[name] = CamppJudge(run.mel_cfg).to(run.device)
            else:
                self.judges[name] = resemblyzer
        self.voice_judge = resemblyzer if voice_critic else None
        self.asr_judge = None
        if cfg.asr_weight > 0 or cfg.asr_words > 0:
            from .asr_judge import WhisperJudge
            self.asr_judge = WhisperJudge(run.mel_cfg, decoder=cfg.asr_words > 0).to(run.device)
        if cfg.dvector_weight > 0:
            from . import dvectors
            self.dvectors = dvectors.build(train_utts, run.cache_dir, progress=run.progress and run.rank == 0)

    def __call__(self, batch, step: int):
        """The autoencoder's loss on ``batch`` -> (loss, content code, speaker indices, metrics).

        reconstruction + lambda(step) * adversarial (the current adversary's verdict, its weights
        held fixed) + the cycle terms on a swap within the batch + the d-vector distillation + the
        Whisper content loss (``asr_weight``) on the reconstruction and, with ``asr_on_swap``, the swap
        + its word loss (``asr_words``) on the output(s) ``asr_words_on`` names + the quantiser's commitment
        (a model with ``vq_codes``) + the spectral detail
        of the reconstruction + the consonants' high bands (``obstruent_weight``, on ``obstruent_on``) + the critic's verdicts.
        With ``lossy_band``, segments of lossy files are no target in their upper bands and no real
        example for the critic (``self.lossless`` keeps which items are, for the critic's step)."""
        r = self.run
        cfg = r.cfg
        seg, ref, spk = (t.to(r.device) for t in batch[:3])
        cycle = (cfg.cycle_content > 0 or cfg.cycle_speaker > 0 or cfg.swap_envelope > 0
                 or (cfg.asr_weight > 0 and cfg.asr_on_swap) or (cfg.asr_words > 0 and cfg.asr_words_on != "recon")
                 or (cfg.obstruent_weight > 0 and cfg.obstruent_on != "recon"))
        with r.autocast():
            out = r.ae(r.content_input(batch), ref, swap_shift=cfg.per_speaker if cycle else 0,
                       swap_strength=cfg.swap_strength,
                       pitch=None if batch.pitch is None else batch.pitch.to(r.device))
        out = type(out)(*(None if t is None else t.float() for t in out))
        lam = losses.adversarial_weight(step, cfg.adv_weight, cfg.adv_warmup, cfg.adv_ramp)
        lossless = None                  # which items are lossless: the only real upper bands
        keep = None
        if cfg.lossy_band > 0 and batch.lossy is not None:
            lossless = ~batch.lossy.to(r.device)
            keep = lossless[:, None] | (torch.arange(seg.shape[1], device=r.device) < cfg.lossy_band)
        self.lossless = lossless
        rec = losses.reconstruction(out.recon, seg, cfg.band_tilt, keep)
        with r.autocast():
            logits = losses.frozen(r.clf, out.content).float()
        adv = losses.adversarial(logits, spk, cfg.adv_loss)
        m = {"loss/reconstruction": rec, "loss/adversarial": adv}
        loss = rec + lam * adv
        if out.vq_loss is not None:      # the code stays near its codes (which follow it: vc.quantize)
            vq = r.model.content_encoder.vq
            m["loss/vq"] = out.vq_loss
            m["vq/perplexity"] = quantize.perplexity(vq.nearest(out.content), vq.codebook.shape[0])
            loss = loss + out.vq_loss
        if cfg.detail_weight > 0:        # sharp harmonics, not their average
            m["loss/spectral_detail"] = d = losses.spectral_detail(out.recon, seg)
            loss = loss + cfg.detail_weight * d
        if cfg.obstruent_weight > 0:     # the consonants' noise: high bands of the input's non-sonorant frames
            outputs = {"recon": [out.recon], "swap": [out.swapped], "both": [out.recon, out.swapped]}[cfg.obstruent_on]
            m["loss/obstruent"] = o = sum(losses.obstruent(x, seg, cfg.obstruent_centre, cfg.obstruent_strict)
                                              for x in outputs) / len(outputs)
            loss = loss + cfg.obstruent_weight * o
        if cfg.speaker_contrast > 0:     # one speaker's references, other utterances, give one voice
            m["loss/speaker_contrast"] = c = losses.speaker_contrast(out.speaker, cfg.per_speaker)
            loss = loss + cfg.speaker_contrast * c
        if cfg.cycle_content > 0:        # the conversion says the same words: its content code = the source's
            swapped = r.model._pad(r.model._batched(out.swapped))
            with r.autocast():
                back = losses.frozen(r.model.content_encoder, swapped).float()
            m["loss/cycle_content"] = c = losses.reconstruction(back, out.content.detach())
            loss = loss + cfg.cycle_content * c
        if cfg.cycle_speaker > 0:        # ... in the target's voice, as frozen speaker networks hear it
            terms = []
            with r.autocast():
                for name, judge in self.judges.items():   # the target: the judge's view of the target's reference
                    back = judge(out.swapped).float()
                    with torch.no_grad():
                        target = judge(ref.roll(cfg.per_speaker, 0)).float()
                    terms.append(losses.cosine_distance(back, target))
                    if len(self.judges) > 1:
                        m[f"loss/cycle_speaker_{name}"] = terms[-1]
                if not self.judges:          # the model's own speaker encoder
                    back = losses.frozen(r.model.speaker_encoder, r.model._batched(out.swapped))
                    target = out.speaker.roll(cfg.per_speaker, 0).detach()
                    terms.append(losses.cosine_distance(back.float(), target.float()))
            m["loss/cycle_speaker"] = c = sum(terms) / len(terms)
            loss = loss + cfg.cycle_speaker * c
        if cfg.swap_envelope > 0:        # ... each frame shaped like real frames of the target speaker
            bank = torch.cat([ref, seg], 2).roll(cfg.per_speaker, 0)   # the target's reference and segment
            m["loss/swap_envelope"] = e = losses.envelope_match(out.swapped, bank)
            loss = loss + cfg.swap_envelope * e
        if self.asr_judge is not None:   # Whisper hears the input's words in what the decoder made
            with r.autocast(), torch.no_grad():
                said = self.asr_judge(seg).float()
            heard_recon = heard_swap = None
            if cfg.asr_weight > 0:
                outputs = [out.recon] + ([out.swapped] if cfg.asr_on_swap and out.swapped is not None else [])
                with r.autocast():
                    heard = [self.asr_judge(o).float() for o in outputs]
                heard_recon = heard[0]
                if len(outputs) > 1:
                    heard_swap = heard[1]
                target = said
                if cfg.asr_norm:         # each channel's mean and spread over time removed: (B, T, D) -> (B, D, T) and back
                    target, *heard = (instance_norm(f.transpose(1, 2)).transpose(1, 2) for f in (target, *heard))
                m["loss/asr"] = a = sum(losses.cosine_distance(h, target, dim=-1) for h in heard) / len(heard)
                loss = loss + cfg.asr_weight * a
            if cfg.asr_words > 0:        # ... and reads the same words from the swap and/or the reconstruction
                with r.autocast():     # (its decoder; no voice in text)
                    heard_words = []
                    if cfg.asr_words_on in ("recon", "both"):
                        heard_words.append(heard_recon if heard_recon is not None
                                           else self.asr_judge(out.recon).float())
                    if cfg.asr_words_on in ("swap", "both"):
                        heard_words.append(heard_swap if heard_swap is not None
                                           else self.asr_judge(out.swapped).float())
                    tokens = self.asr_judge.transcript(said, max_tokens=int(2 + 6 * seg.shape[-1] * r.mel_cfg.hop_length / r.mel_cfg.sample_rate))
                    m["loss/asr_words"] = w = sum(self.asr_judge.word_loss(h, said, tokens)
                                                  for h in heard_words) / len(heard_words)
                loss = loss + cfg.asr_words * w
        if self.dvectors is not None:    # the speaker vector predicts the reference's d-vector
            from .dvectors import lookup
            target = lookup(self.dvectors, batch.reference_paths).to(r.device)
            m["loss/dvector"] = d = losses.cosine_distance(r.dvec_head(out.speaker), target)
            loss = loss + cfg.dvector_weight * d
        self.fakes = [out.recon.detach()] + ([out.swapped.detach()] if out.swapped is not None else [])
        self.voices = [None] * len(self.fakes)
        if self.voice_judge is not None:  # whose voice: the reference's d-vector; the swap's is its target's
            with torch.no_grad(), r.autocast():
                voice = self.voice_judge(ref).float()
            self.voices = [voice, voice.roll(cfg.per_speaker, 0)][:len(self.fakes)]
        if cfg.gan_weight > 0:           # sharper spectra: the critic takes the outputs for real ones
            with r.autocast():
                fake_scores, fake_feats = losses.frozen(r.critic, out.recon, self.voices[0])
                with torch.no_grad():
                    _, real_feats = r.critic(seg, self.voices[0])
                if lossless is not None:     # lossy segments are no real examples
                    real_feats, fake_feats = ([f[lossless] for f in feats] for feats in (real_feats, fake_feats))
                fm = discriminator.feature_matching([f.float() for f in real_feats], [f.float() for f in fake_feats])
                g = discriminator.generator_loss(fake_scores.float())
                if out.swapped is not None:
                    g = (g + discriminator.generator_loss(
                        losses.frozen(r.critic, out.swapped, self.voices[1])[0].float())) / 2
            m["loss/gan_generator"], m["loss/feature_matching"] = g, fm
            loss = loss + cfg.gan_weight * (g + fm)
        m["adversary/weight"] = lam
        return loss, out.content, spk, m
