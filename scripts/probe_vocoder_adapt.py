"""Does HiFi-GAN adapted to the model's own mels close the gap the ceiling probe found?
    python scripts/probe_vocoder_adapt.py --steps 800 --lr 1e-5      # ~20 min on 2 CPU cores
    python scripts/probe_vocoder_adapt.py --gan --device cuda --batch 16 --steps 4000 --lr 1e-4 --save G.pt
    # a GPU machine without the corpus: build the pairs here, train there, score here
    python scripts/probe_vocoder_adapt.py --pairs pairs.pt --crop-seconds 3 --steps 0 --skip-score
    python scripts/probe_vocoder_adapt.py --pairs pairs.pt --base G0.pt --gan --device cuda ... --save G.pt
    python scripts/probe_vocoder_adapt.py --tuned G.pt

The reconstruction keeps about half of what ECAPA hears in a real clip (scripts/probe_ceiling.py:
the fine spectro-temporal detail). TTS systems close such a gap by fine-tuning the vocoder on
the acoustic model's (smooth) mels paired with the real waveforms. Here: one random `train`
utterance of each of --train-speakers speakers, its reconstruction R by the model (its own
content and speaker vector) and its real waveform; the HiFi-GAN generator is fine-tuned on 32-frame
crops of (R, waveform) with a multi-resolution STFT loss, or, with --gan, with HiFi-GAN's own
objective (least-squares adversarial + feature matching + mel L1) against its two discriminators,
which no wheel ships and which start from scratch (vc/vocoder_gan.py): they first train alone on
the base generator's output, then with the generator.

Scored on the `val` speakers with both generators: ECAPA similarity of the reconstruction and of
the resynthesis to another clip of the speaker, and of the conversions between the speakers'
first clips (all ordered pairs, the model's strength) to the target and to the source, with
DNSMOS. Paired differences with 95 % bootstrap intervals. Nothing is written into the package.
"""
from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

import numpy as np
import soxr
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vc.audio import load_audio                    # noqa: E402
from vc.convert import load                        # noqa: E402
from vc.data import find_utterances                # noqa: E402
from vc.evaluate import ecapa, speaker             # noqa: E402
from vc.evaluate.pairs import by_speaker           # noqa: E402
from vc.evaluate.quality import dnsmos             # noqa: E402
from vc.evaluate.report import bootstrap_ci       # noqa: E402
from vc.vocoder import HiFiGAN                      # noqa: E402
from vc.vocoder_gan import Discriminators, discriminator_loss, generator_loss   # noqa: E402

HOP = 256          # HiFi-GAN V1: one mel frame is 256 samples


def stft_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss of (B, T) waveforms (Parallel WaveGAN): spectral convergence
    plus log-magnitude L1 at 512, 1024 and 2048 points, averaged."""
    total = 0
    for n in (512, 1024, 2048):
        w = torch.hann_window(n, device=a.device)
        A = torch.stft(a, n, n // 4, window=w, return_complex=True).abs()
        B = torch.stft(b, n, n // 4, window=w, return_complex=True).abs()
        total = total + (A - B).norm() / B.norm() + (torch.log(A + 1e-5) - torch.log(B + 1e-5)).abs().mean()
    return total / 3


def crop(mel: torch.Tensor, wav: torch.Tensor, frames: int, t: int):
    """The crop of ``frames`` mel frames (n_mels, T) from frame ``t``, and the samples they stand for."""
    return mel[:, t:t + frames], wav[t * HOP:(t + frames) * HOP]


def batch(pairs, args, rng, device, fakes=None):
    """A batch of crops: mels (B, n_mels, frames) and waveforms (B, frames * HOP), plus the base
    generator's waveforms for the same crops when ``fakes`` (one per pair) is given."""
    idx = rng.sample(range(len(pairs)), args.batch)
    mels, wavs, fks = [], [], []
    for i in idx:
        R, w = pairs[i]
        t = rng.randrange(0, R.shape[1] - args.frames)
        m, real = crop(R, w, args.frames, t)
        mels.append(m)
        wavs.append(real)
        if fakes is not None:
            fks.append(crop(R, fakes[i], args.frames, t)[1])
    out = [torch.stack(mels).to(device), torch.stack(wavs).to(device)]
    return out + ([torch.stack(fks).to(device)] if fakes is not None else [])


def train_stft(gen, pairs, args, rng, device) -> None:
    """The cheap version: multi-resolution STFT loss only."""
    opt = torch.optim.AdamW(gen.parameters(), args.lr, betas=(0.8, 0.99))
    t0 = time.time()
    for step in range(args.steps):
        mels, wavs = batch(pairs, args, rng, device)
        loss = stft_loss(gen(mels).squeeze(1), wavs)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)


def critic_step(critics, opt_d, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """One update of the critics on (B, T) real and generated waveforms -> their loss."""
    loss = discriminator_loss(critics(real[:, None])[0], critics(fake[:, None])[0])
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    return loss


def train_gan(gen, base, pairs, args, rng, device) -> None:
    """HiFi-GAN's own objective (vc/vocoder_gan.py) with its discriminators trained from scratch.
    First --disc-steps steps train the critics alone, on the base generator's output computed once
    (cheap: no generator pass), so that the generator meets critics that already know its
    artefacts; then both train, as in HiFi-GAN. With --state the run resumes from that file and
    saves into it when it stops (--steps done, or --max-minutes spent): a lent GPU's short calls add up."""
    critics = Discriminators(args.disc_width).to(device).train()
    opt_d = torch.optim.AdamW(critics.parameters(), args.disc_lr, betas=(0.8, 0.99))
    opt_g = torch.optim.AdamW(gen.parameters(), args.lr, betas=(0.8, 0.99))
    done = {"critics": 0, "joint": 0}
    if args.state and Path(args.state).is_file():
        state = torch.load(args.state, map_location=device, weights_only=True)
        for name, obj in (("generator", gen), ("critics", critics), ("opt_g", opt_g), ("opt_d", opt_d)):
            obj.load_state_dict(state[name])
        done = {"critics": int(state["critics_steps"]), "joint": int(state["joint_steps"])}
        print(f"resumed from {args.state}: {done['critics']} critic steps, {done['joint']} joint steps", flush=True)
        rng.seed(1_000_003 * done["critics"] + done["joint"])     # other crops than the first call's
    t0 = time.time()
    out_of_time = lambda: args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes  # noqa: E731
    if done["critics"] < args.disc_steps:
        vocoder = copy.deepcopy(base).to(device)
        with torch.inference_mode():
            fakes = [vocoder(R[None].to(device)).squeeze(0).squeeze(0).cpu().clone() for R, _ in pairs]
        del vocoder
    while done["critics"] < args.disc_steps and not out_of_time():
        step = done["critics"]
        _, wavs, fks = batch(pairs, args, rng, device, fakes)
        loss_d = critic_step(critics, opt_d, wavs, fks)
        done["critics"] += 1
        if step % 100 == 0 or step == args.disc_steps - 1:
            print(f"critics alone, step {step}: loss {loss_d.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    while done["critics"] >= args.disc_steps and done["joint"] < args.steps and not out_of_time():
        step = done["joint"]
        mels, wavs = batch(pairs, args, rng, device)
        fake = gen(mels).squeeze(1)
        loss_d = critic_step(critics, opt_d, wavs, fake.detach())
        loss_g, parts = generator_loss(critics, fake, wavs)
        opt_g.zero_grad()
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 10.0)
        opt_g.step()
        done["joint"] += 1
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: critics {loss_d.item():.3f}, generator {loss_g.item():.3f} "
                  f"(adv {parts['adv'].item():.3f}, fm {parts['fm'].item():.3f}, mel {parts['mel'].item():.3f}) "
                  f"({time.time() - t0:.0f} s)", flush=True)
    if args.state:
        torch.save({"generator": gen.state_dict(), "critics": critics.state_dict(), "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(), "critics_steps": done["critics"], "joint_steps": done["joint"]},
                   args.state)
        print(f"saved {args.state}: {done['critics']} critic steps, {done['joint']} joint steps", flush=True)


def build_pairs(conv, args, rng) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(reconstruction R (n_mels, T), real waveform (T * HOP,)) for one random `train` utterance of
    each of the first --train-speakers (shuffled) speakers, cut to --crop-seconds if given."""
    train = paths_by_speaker(args.data, "train")
    speakers = sorted(train)
    rng.shuffle(speakers)
    pairs = []
    with torch.inference_mode():
        for s in speakers[:args.train_speakers]:
            wav = load_audio(rng.choice(train[s]), conv.sample_rate)
            M = conv.mel(wav)
            if M.shape[1] < args.frames + 2:
                continue
            R = conv.convert_mel(M, conv.model.embed_speaker(M)[0], pitch=conv.pitch(wav)).float()
            w = torch.from_numpy(np.pad(wav, (0, max(0, M.shape[1] * HOP - len(wav))))).float()
            if args.crop_seconds:
                n = max(args.frames + 2, int(args.crop_seconds * conv.sample_rate / HOP))
                t = rng.randrange(0, max(1, R.shape[1] - n))
                R, w = crop(R, w, n, t)
            pairs.append((R.clone(), w.clone()))
    return pairs


def save_pairs(pairs, path) -> None:
    """Half precision: a lent GPU machine takes at most 64 MiB with it."""
    torch.save({"mels": [R.half() for R, _ in pairs], "wavs": [w.half() for _, w in pairs]}, path)


def read_pairs(path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    d = torch.load(path, map_location="cpu", weights_only=True)
    return [(R.float(), w.float()) for R, w in zip(d["mels"], d["wavs"])]


def paths_by_speaker(data: str, split: str) -> dict[str, list[str]]:
    return {s: [u.path for u in utts] for s, utts in by_speaker(find_utterances(data, split)).items()}


def show(label: str, x) -> None:
    x = np.asarray(x)
    lo, hi = bootstrap_ci(x) or (0.0, 0.0)
    print(f"{label}: {x.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")


def train(base, pairs, args, rng, device):
    """A copy of the ``base`` generator fine-tuned on ``pairs`` (nothing when --steps is 0), back on the CPU."""
    gen = copy.deepcopy(base).to(device).train()
    for q in gen.parameters():
        q.requires_grad_(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True        # fixed crop shapes
    t0 = time.time()
    if args.gan:
        train_gan(gen, base, pairs, args, rng, device)
    elif args.steps:
        train_stft(gen, pairs, args, rng, device)
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    return gen.cpu()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the installed default model)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--train-speakers", type=int, default=400)
    p.add_argument("--val-speakers", type=int, default=None, help="score only the first N (a quick check)")
    p.add_argument("--save", default=None, help="write the fine-tuned generator's weights here")
    p.add_argument("--gan", action="store_true", help="HiFi-GAN's objective with its discriminators "
                   "(trained from scratch) instead of the STFT loss alone")
    p.add_argument("--disc-width", type=float, default=1.0, help="--gan: the critics' channels x this")
    p.add_argument("--disc-steps", type=int, default=1000, help="--gan: steps that train the critics alone first")
    p.add_argument("--disc-lr", type=float, default=2e-4)
    p.add_argument("--device", default="cpu", help="where to train (cuda on a GPU machine); scoring stays on the CPU")
    p.add_argument("--state", default=None, help="--gan: resume from this file if it exists, save into it at the end")
    p.add_argument("--max-minutes", type=float, default=None, help="--gan: stop training after this long (then save)")
    p.add_argument("--skip-score", action="store_true", help="train (and save) only")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--pairs", default=None, help="read the training pairs from this file if it exists, "
                   "else build them and write them there (half precision)")
    p.add_argument("--crop-seconds", type=float, default=None, help="keep this long a random piece of each pair")
    p.add_argument("--base", default=None, help="generator weights to start from (default: the wheel's HiFi-GAN)")
    p.add_argument("--tuned", default=None, help="score these generator weights against the base; no training")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    rng = random.Random(0)
    torch.set_num_threads(args.threads)
    have_pairs = bool(args.pairs) and Path(args.pairs).is_file()
    # a GPU machine holds no corpus and no model: there the pairs come from --pairs, the weights from --base
    conv = None if (have_pairs and args.skip_score) else load(args.model)

    # -- training pairs: (reconstruction, real waveform)
    if args.tuned:
        pairs = []
    elif have_pairs:
        pairs = read_pairs(args.pairs)
    else:
        pairs = build_pairs(conv, args, rng)
        if args.pairs:
            save_pairs(pairs, args.pairs)
    if pairs:
        print(f"{len(pairs)} training pairs, {sum(w.numel() for _, w in pairs) / 22050:.0f} s", flush=True)

    base = HiFiGAN(args.base).generator if args.base else conv.vocoder.generator
    if args.tuned:
        gen = HiFiGAN(args.tuned).generator
    else:
        gen = train(base, pairs, args, rng, device)
    gen.eval()
    for q in gen.parameters():
        q.requires_grad_(False)
    if args.save:
        torch.save(gen.state_dict(), args.save)
    if args.skip_score:
        return 0
    sr = conv.sample_rate
    # -- scoring on the val speakers, both generators
    embed = lambda wav: ecapa.embed(soxr.resample(wav, sr, speaker.SAMPLE_RATE).astype(np.float32))   # noqa: E731
    val = paths_by_speaker(args.data, "val")
    vspk = [s for s in sorted(val) if len(val[s]) >= 2][:args.val_speakers]
    generators = {"base": base, "tuned": gen}

    def vocode(name, mel):
        conv.vocoder.generator = generators[name]
        return conv.vocode(mel)

    mels, voices, refs, pitches = {}, {}, {}, {}
    sims = {f"{k}_{g}": [] for k in ("reconstruction", "resynthesis") for g in generators}
    rows = []
    with torch.inference_mode():
        for s in vspk:
            wav = load_audio(val[s][0], sr)
            mels[s], pitches[s] = conv.mel(wav), conv.pitch(wav)
            voices[s] = conv.voice(mels[s], pitches[s])
            refs[s] = embed(load_audio(val[s][1], sr))
        for s in vspk:
            R = conv.convert_mel(mels[s], voices[s], pitch=pitches[s])
            for g in generators:
                sims[f"reconstruction_{g}"].append(speaker.cosine(embed(vocode(g, R)), refs[s]))
                sims[f"resynthesis_{g}"].append(speaker.cosine(embed(vocode(g, mels[s])), refs[s]))
        for a in vspk:
            for b in vspk:
                if a != b:
                    C = conv.convert_mel(mels[a], voices[b], own=voices[a], pitch=pitches[a])
                    row = {}
                    for g in generators:
                        w = vocode(g, C)
                        e = embed(w)
                        row[g] = (speaker.cosine(e, refs[b]), speaker.cosine(e, refs[a]),
                                  dnsmos(soxr.resample(w, sr, 16000).astype(np.float32))["ovrl"])
                    rows.append(row)
    how = (f"HiFi-GAN objective, critics x{args.disc_width}, {args.disc_steps} steps alone first" if args.gan
           else "STFT loss")
    tuned = (f"the generator in {args.tuned}" if args.tuned else f"generator fine-tuned {args.steps} steps, "
             f"lr {args.lr}, batch {args.batch} x {args.frames} frames, {how}")
    print(f"\n{len(vspk)} val speakers, {len(rows)} conversions; tuned = {tuned}")
    for k, v in sims.items():
        print(f"{k}: {np.mean(v):.3f}")
    for k in ("reconstruction", "resynthesis"):
        show(f"{k} ECAPA sim, tuned - base", np.array(sims[f"{k}_tuned"]) - sims[f"{k}_base"])
    for i, name in enumerate(("conversion ECAPA sim to target", "conversion ECAPA sim to source", "conversion DNSMOS")):
        b, t = (np.array([r[g][i] for r in rows]) for g in generators)
        print(f"{name}: base {b.mean():.3f}, tuned {t.mean():.3f}")
        show(f"  {name}, tuned - base", t - b)
    margin = lambda g: np.array([r[g][0] - r[g][1] for r in rows])   # noqa: E731
    show("conversion ECAPA margin, tuned - base", margin("tuned") - margin("base"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
