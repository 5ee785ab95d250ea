"""The evaluation loop: convert each pair, score it and its baselines, append it to results.jsonl.

Per pair, four systems are scored against the same references:
  converted       the source's words in the target's voice (the model + vocoder)
  source          the source unchanged (no conversion: the floor of similarity to the target)
  resynthesis     a real clip of the target speaker through the vocoder only (vocoder ceiling)
  reconstruction  the same clip through the model with its own content and speaker (model ceiling)
Every system is compared with: the target clip (sim_target), the source (sim_source), the words it
should say (CER / WER), and, where one exists, a real recording of the target speaker saying those
words (MCD). Similarities come from two speaker verifiers: Resemblyzer (sim_target, sim_source) and
ECAPA-TDNN (ecapa_sim_target, ecapa_sim_source), which training never uses; words from two
recognisers: Whisper tiny (cer, wer), which training uses, and Moonshine base (moonshine_cer,
moonshine_wer), which it never does. Where a pair has no transcript, each recogniser is scored
against its own reading of the source. What is measured on real
clips and baselines is cached per clip within the process. ``systems`` picks which of the four to
score (source and resynthesis do not depend on the model: a screening run can leave them out).

Resuming: a pair whose key is in results.jsonl is not scored again; a failed pair (a missing or
broken audio file) is recorded with its reason and retried by the next run.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soxr
import torch
from tqdm import tqdm

from ..audio import AudioError, match_loudness, save_audio
from ..convert import Converter, Timings
from ..files import atomic_open, atomic_path
from . import SYSTEMS, asr, ecapa, moonshine, probes, quality, speaker
from .pairs import Pair

RESULTS = "results.jsonl"
SHOWN = 3          # the first pairs also get a mel figure and their converted audio on disk


class Scorer:
    """Measures audio; caches what it measured on real clips and baselines (keyed by path)."""

    def __init__(self, conv: Converter):
        self.conv, self.sr = conv, conv.sample_rate
        self.cache: dict = {}
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, stage: str):
        t = time.perf_counter()
        yield
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    def _cached(self, key, fn):
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    # -- measurements of one waveform (22,050 Hz) -------------------------------------------------
    def audio(self, path) -> np.ndarray:
        with self.timed("load"):
            return self.conv.load(path)

    def to16k(self, wav: np.ndarray) -> np.ndarray:
        return soxr.resample(wav, self.sr, speaker.SAMPLE_RATE).astype(np.float32)

    def embed(self, wav) -> dict:
        """Both verifiers' embeddings: {"resemblyzer": (256,), "ecapa": (192,)}."""
        wav16 = self.to16k(wav)
        with self.timed("speaker"):
            resemblyzer = speaker.embed(wav16)
        with self.timed("ecapa"):
            return {"resemblyzer": resemblyzer, "ecapa": ecapa.embed(wav16)}

    def transcribe(self, wav) -> dict:
        """Both recognisers' transcripts: {"whisper": str, "moonshine": str}."""
        wav16 = self.to16k(wav)
        with self.timed("asr"):
            whisper = asr.transcribe(wav16)
        with self.timed("moonshine"):
            return {"whisper": whisper, "moonshine": moonshine.transcribe(wav16)}

    def mos(self, wav) -> dict:
        with self.timed("dnsmos"):
            return quality.dnsmos(self.to16k(wav))

    def mcd(self, wav, reference) -> float:
        with self.timed("mcd"):
            return quality.mcd(wav, reference, self.sr)

    def analyse(self, wav, reference=None) -> dict:
        out = {"emb": self.embed(wav), "hyp": self.transcribe(wav), "mos": self.mos(wav)}
        out["mcd"] = self.mcd(wav, reference) if reference is not None else None
        return out

    # -- real clips and baselines, cached ---------------------------------------------------------
    def embedding(self, path):
        return self._cached(("emb", path), lambda: self.embed(self.audio(path)))

    def words(self, path) -> dict:
        return self._cached(("asr", path), lambda: self.transcribe(self.audio(path)))

    def real(self, path) -> dict:
        def make():
            wav = self.audio(path)
            return {"emb": self.embedding(path), "hyp": self.words(path), "mos": self.mos(wav), "mcd": None}
        return self._cached(("real", path), make)

    @torch.inference_mode()
    def baseline(self, kind: str, path) -> dict:
        """Analysis of a real clip resynthesised by the vocoder, or reconstructed by the model;
        its MCD is to the clip itself (the real recording of the same words by the same voice)."""
        def make():
            wav = self.audio(path)
            with self.timed("baselines"):
                mel = self.conv.mel(wav)
                if kind == "reconstruction":        # the encoder's own vector, never adapted
                    own = self.conv.model.embed_speaker(mel)[0]
                    mel = self.conv.convert_mel(mel, own, own=own, pitch=self.conv.pitch(wav))
                out = match_loudness(self.conv.vocode(mel), wav)
            return self.analyse(out, reference=wav)
        return self._cached((kind, path), make)

    # -- one pair ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def convert(self, src: np.ndarray, tgt: np.ndarray):
        """-> (converted wav, source mel, converted mel, seconds per stage of the conversion)."""
        conv = self.conv
        conv.timings = Timings()
        src_mel, src_pitch = conv.mel(src), conv.pitch(src)
        t, f0 = time.perf_counter(), conv.timings.stages.get("features", 0.0)
        voice = conv.target(tgt)
        speaker_s = time.perf_counter() - t - (conv.timings.stages["features"] - f0)
        out_mel = conv.convert_mel(src_mel, voice.vector, pitch=src_pitch, frames=voice.frames)
        out = match_loudness(conv.vocode(out_mel), src)
        stages = dict(conv.timings.stages)
        stages["model"] = stages.get("model", 0.0) + speaker_s      # speaker encoder + encode/decode
        return out, src_mel, out_mel, stages

    def score(self, pair: Pair, systems=SYSTEMS) -> tuple[dict, dict]:
        """-> (the pair's record, things to show: waveforms and mels). Scores the ``systems`` only."""
        self.seconds, cpu = {}, time.process_time()
        src, tgt = self.audio(pair.source), self.audio(pair.target)
        ref = self.audio(pair.reference) if pair.reference else None
        t = time.perf_counter()
        out, src_mel, out_mel, stages = self.convert(src, tgt)
        self.seconds["convert"] = time.perf_counter() - t
        tgt_emb, src_emb = self.embedding(pair.target), self.embedding(pair.source)
        spoken = lambda text, path: {"whisper": text, "moonshine": text} if text else self.words(path)  # noqa: E731
        words = spoken(pair.text, pair.source)
        ceiling = [s for s in ("resynthesis", "reconstruction") if s in systems]
        ceiling_words = spoken(pair.ceiling_text, pair.ceiling) if ceiling else None
        # another clip of the target speaker than the one converted to: the fair reference for
        # what copies from the target clip itself (--adapt fits to it, --match takes its frames)
        other_emb = self.embedding(pair.ceiling) if pair.ceiling and pair.ceiling != pair.target else None

        def row(an, said, mcd, other=False):
            held_out = {} if not other or other_emb is None else {
                "sim_other": speaker.cosine(an["emb"]["resemblyzer"], other_emb["resemblyzer"]),
                "ecapa_sim_other": speaker.cosine(an["emb"]["ecapa"], other_emb["ecapa"])}
            return {**held_out, "sim_target": speaker.cosine(an["emb"]["resemblyzer"], tgt_emb["resemblyzer"]),
                    "sim_source": speaker.cosine(an["emb"]["resemblyzer"], src_emb["resemblyzer"]),
                    "ecapa_sim_target": speaker.cosine(an["emb"]["ecapa"], tgt_emb["ecapa"]),
                    "ecapa_sim_source": speaker.cosine(an["emb"]["ecapa"], src_emb["ecapa"]),
                    "cer": asr.cer(said["whisper"], an["hyp"]["whisper"]),
                    "wer": asr.wer(said["whisper"], an["hyp"]["whisper"]),
                    "moonshine_cer": asr.cer(said["moonshine"], an["hyp"]["moonshine"]),
                    "moonshine_wer": asr.wer(said["moonshine"], an["hyp"]["moonshine"]),
                    "dnsmos": an["mos"]["ovrl"], "dnsmos_sig": an["mos"]["sig"],
                    "dnsmos_bak": an["mos"]["bak"], "mcd": mcd, "hyp": an["hyp"]["whisper"],
                    "moonshine_hyp": an["hyp"]["moonshine"]}

        scored = {}
        if "converted" in systems:
            converted = self.analyse(out, reference=ref)
            scored["converted"] = row(converted, words, converted["mcd"], other=True)
        if "source" in systems:
            scored["source"] = row(self.real(pair.source), words, self.mcd(src, ref) if ref is not None else None,
                                   other=True)
        for kind in ceiling:
            an = self.baseline(kind, pair.ceiling)
            scored[kind] = row(an, ceiling_words, an["mcd"])
        record = {"key": pair.key, "pair": pair.to_dict(),
                  "words": words["whisper"], "words_from": "transcript" if pair.text else "asr of source",
                  **({} if pair.text else {"moonshine_words": words["moonshine"]}),
                  "ceiling_words_from": ("transcript" if pair.ceiling_text else "asr of clip") if ceiling else None,
                  "seconds": {"source": src.size / self.sr, "converted": out.size / self.sr},
                  "stages": stages, "eval_seconds": dict(self.seconds),
                  "eval_cpu_seconds": time.process_time() - cpu, "systems": scored}
        shown = {"converted": out, "target": tgt, "source_mel": src_mel, "converted_mel": out_mel}
        return record, shown

    # -- real utterances of the evaluation speakers ------------------------------------------------
    @torch.inference_mode()
    def codes(self, labelled, progress: bool = True):
        """Both verifiers' embeddings and model codes of labelled real utterances ((path, speaker) list).
        -> (speakers, {"resemblyzer", "ecapa", "content", "speaker", "mel"} arrays, problems)."""
        keep, feats, problems = [], {"resemblyzer": [], "ecapa": [], "content": [], "speaker": [], "mel": []}, []
        for path, spk in tqdm(labelled, desc="speakers", unit="clip", disable=not progress, leave=False):
            try:
                wav = self.audio(path)
            except AudioError as e:
                problems.append(str(e))
                continue
            mel = self.conv.mel(wav)
            code = self.conv.model.encode(mel)
            emb = self.embedding(path)
            feats["resemblyzer"].append(emb["resemblyzer"])
            feats["ecapa"].append(emb["ecapa"])
            feats["content"].append(probes.content_stats(code.content[0]))
            feats["speaker"].append(code.speaker[0].cpu().numpy())
            feats["mel"].append(probes.mel_stats(mel))
            keep.append(spk)
        return keep, {k: np.stack(v) for k, v in feats.items() if v}, problems


# -- files -----------------------------------------------------------------------------------------

SIGNATURE_DEFAULTS = {"adapt_steps": 0, "match": 0.0, "match_high": 0.0}     # what a report written before the key existed used


def check_signature(out_dir: Path, signature: dict):
    """A report folder holds one evaluation (one model, one vocoder): refuse to mix two."""
    path = out_dir / "run.json"
    if out_dir.exists() and not out_dir.is_dir():
        from ..cli import UsageError
        raise UsageError(f"{out_dir}: exists and is not a folder (--out needs a folder)")
    if path.is_file():
        old = {**SIGNATURE_DEFAULTS, **json.loads(path.read_text())}
        changed = [k for k in signature if old.get(k) != signature[k]]
        if changed:
            from ..cli import UsageError
            raise UsageError(f"{out_dir}: holds results of another evaluation (different "
                             f"{', '.join(changed)}): choose a new --out, or delete {out_dir / RESULTS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        f.write(json.dumps(signature, indent=1) + "\n")


def results_file(out_dir: Path, shard: tuple[int, int] | None = None) -> Path:
    """results.jsonl, or results.shard-I-of-N.jsonl for one of N processes sharing a report."""
    return out_dir / (RESULTS if shard is None else f"results.shard-{shard[0]}-of-{shard[1]}.jsonl")


def read_all_results(out_dir: Path) -> dict[str, dict]:
    """key -> latest record over results.jsonl and every shard's file."""
    out = {}
    for path in sorted(Path(out_dir).glob("results*.jsonl")):
        out.update(read_results(path))
    return out


def read_results(path: Path) -> dict[str, dict]:
    """key -> latest record; lines cut short by a kill are ignored."""
    out = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "key" in rec:
                out[rec["key"]] = rec
    return out


def append_result(path: Path, record: dict):
    ends_clean = not path.is_file() or path.stat().st_size == 0 or path.read_bytes()[-1:] == b"\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(("" if ends_clean else "\n") + json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def save_example(out_dir: Path, index: int, pair: Pair, shown: dict, scorer: Scorer):
    """The converted audio and a mel figure (source / target / converted) of one pair."""
    import matplotlib.pyplot as plt

    from ..plots import mel_figure
    save_audio(out_dir / "audio" / f"pair{index:03d}_converted.wav", shown["converted"], scorer.sr)
    fig = mel_figure({f"source: {Path(pair.source).name}": shown["source_mel"],
                      f"target: {Path(pair.target).name}": scorer.conv.mel(shown["target"]),
                      "converted (model output, before the vocoder)": shown["converted_mel"]})
    with atomic_path(out_dir / f"mel_pair{index:03d}.png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def complete(record: dict, systems) -> bool:
    """A record that needs no re-scoring: no error, every asked system, both verifiers, both
    recognisers."""
    rows = record.get("systems", {})
    return "error" not in record and all(s in rows and "ecapa_sim_target" in rows[s] and "moonshine_cer" in rows[s]
                                         for s in systems)


def score_pairs(scorer: Scorer, pairs: list[Pair], out_dir: Path, progress: bool = True,
                systems=SYSTEMS, shard: tuple[int, int] | None = None) -> list[dict]:
    """Score every pair not yet in the results files with all of ``systems`` (a record that lacks
    one, or the second verifier, is scored again); return the records of ``pairs``, in order.
    ``shard`` (I, N): score only pairs I, I + N, I + 2N ... into this shard's own file."""
    results = results_file(out_dir, shard)
    done = {k for k, r in read_all_results(out_dir).items() if complete(r, systems)}
    todo = [(i, p) for i, p in enumerate(pairs) if p.key not in done
            and (shard is None or i % shard[1] == shard[0])]
    bar = tqdm(todo, desc="pairs", unit="pair", disable=not progress,
               initial=len(pairs) - len(todo), total=len(pairs))
    for i, pair in bar:
        try:
            record, shown = scorer.score(pair, systems)
        except AudioError as e:
            record, shown = {"key": pair.key, "pair": pair.to_dict(), "error": str(e)}, None
        append_result(results, record)
        if shown is not None and i < SHOWN:
            save_example(out_dir, i, pair, shown, scorer)
        if "error" not in record and "converted" in record["systems"]:
            bar.set_postfix(sim_target=f"{record['systems']['converted']['sim_target']:.2f}")
    bar.close()
    by_key = read_all_results(out_dir)
    return [by_key[p.key] for p in pairs if p.key in by_key]
