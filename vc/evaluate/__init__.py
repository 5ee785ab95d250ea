"""``vc evaluate``: convert many pairs and measure speaker similarity, content, quality, speed.

    vc evaluate --model CKPT --data /path/to/manifest.tsv --split dev --out REPORT_DIR
    vc evaluate --pairs PAIRS.tsv --out REPORT_DIR        # the installed default model

Files, one per role: pairs (what to evaluate), speaker (Resemblyzer + threshold), ecapa (a second,
independent speaker verifier that training never uses), asr (Whisper, CER / WER), moonshine (a
second recogniser that training never uses), quality (DNSMOS,
MCD), probes (disentanglement), runner (the resumable loop), report (figures, tables, plots). The
scorers load lazily, once per process; importing this package loads none of them.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

CALIBRATION_PER_SPEAKER = 10   # real utterances per speaker for the threshold and the probes
SYSTEMS = ("converted", "source", "resynthesis", "reconstruction")

EPILOG = """\
PAIRS.tsv: tab-separated with a header; columns source, target (a clip of the target speaker),
optional reference (the target speaker saying the source's sentence: enables MCD), text (the
source's transcript), source_speaker, target_speaker (enable SVAR calibration and the probes).
With --data every ordered pair of different speakers of the split is evaluated.
REPORT_DIR gets report.md, report.json, results.jsonl (one line per pair: a re-run resumes),
similarity.png, mel_pair*.png and audio/ (the first converted pairs).
"""


def register(sub):
    from ..cli import add_model_options
    p = sub.add_parser("evaluate", help="measure a model on many pairs (similarity, CER, DNSMOS, speed)",
                       description="Convert every pair and measure speaker similarity, speaker verification "
                                   "accept rate, CER/WER, DNSMOS, MCD, disentanglement and speed, next to "
                                   "three baselines (source unchanged, vocoder resynthesis, reconstruction).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", metavar="PAIRS.tsv", help="the pairs to convert (see below)")
    src.add_argument("--data", metavar="DIR_OR_MANIFEST", help="manifest .tsv, VCTK root or speaker folders")
    p.add_argument("--split", default="dev",
                   help="with --data: the split to use ('all' for every utterance; default dev)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for the report (resumable)")
    p.add_argument("--max-pairs", type=int, metavar="N", help="a deterministic subset of N pairs, for quick looks")
    p.add_argument("--seed", type=int, default=0, help="chooses the utterances of --data pairs (default 0)")
    p.add_argument("--threshold", type=float,
                   help="Resemblyzer verification threshold to use instead of calibrating one (the second "
                        "verifier, ECAPA-TDNN, is always calibrated)")
    p.add_argument("--systems", default=",".join(SYSTEMS), metavar="LIST",
                   help="comma-separated systems to score (default: all four, "
                        f"{','.join(SYSTEMS)}); the baselines source and resynthesis do not depend on "
                        "the model, so a quick screening of models can use converted,reconstruction")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for the model, vocoder and scorers (default 1: on a machine shared "
                        "with other jobs more threads mostly wait for each other; raise it on an idle one)")
    p.add_argument("--shard", metavar="I/N", help="score only every N-th pair, starting at I (0-based), in "
                   "one of N processes sharing --out; then run once without --shard to write the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")
    add_model_options(p)
    p.set_defaults(func=run)


def check_scorers():
    """Fail before converting anything when a scorer or its weights are missing."""
    import importlib.util

    from ..cli import UsageError
    from . import moonshine
    from .asr import model_dir
    from .ecapa import PACKAGE, weights_path
    missing = [name for name in ("resemblyzer", "webrtcvad", "faster_whisper", "jiwer", "speechmos", "onnxruntime",
                                 "moonshine_cpp")
               if importlib.util.find_spec(name) is None]
    try:
        weights_path()
    except RuntimeError:
        missing.append(PACKAGE)
    if missing:
        raise UsageError(f"the evaluation needs {', '.join(missing)}: pip install 'vc[eval]' "
                         f"and pip install --no-deps resemblyzer {PACKAGE}==0.2.4")
    try:
        model_dir()
        moonshine.model_dir()
    except RuntimeError as e:
        raise UsageError(str(e)) from None


def parse_shard(text: str) -> tuple[int, int]:
    from ..cli import UsageError
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text}: give I/N, e.g. 0/2") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return i, n


def parse_systems(text: str) -> list[str]:
    """'converted,reconstruction' -> ['converted', 'reconstruction'] (in the canonical order)."""
    from ..cli import UsageError
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in asked if s not in SYSTEMS]
    if unknown or not asked:
        raise UsageError(f"--systems: {', '.join(unknown) or 'none given'}: choose from {', '.join(SYSTEMS)}")
    return [s for s in SYSTEMS if s in asked]


def run(args) -> int:
    import numpy as np
    import torch

    import vc

    from ..cli import UsageError, check_strength_option
    from ..convert import DEFAULT_MODEL
    from ..data import find_utterances
    from ..files import file_sha1
    from . import pairs as pairs_mod
    from . import ecapa, moonshine, probes, report, runner, speaker

    if args.max_pairs is not None and args.max_pairs < 1:
        raise UsageError("--max-pairs must be 1 or more")
    if args.threads < 1:
        raise UsageError("--threads must be 1 or more")
    systems = parse_systems(args.systems)
    check_strength_option(args)
    shard = parse_shard(args.shard) if args.shard else None
    torch.set_num_threads(args.threads)
    if args.data:
        utts = find_utterances(args.data, None if args.split == "all" else args.split)
        all_pairs = pairs_mod.corpus_pairs(utts, seed=args.seed)
        labelled = pairs_mod.calibration_set(utts, CALIBRATION_PER_SPEAKER, seed=args.seed)
        pairs_from = f"{args.data} (split {args.split}, seed {args.seed})"
    else:
        all_pairs = pairs_mod.read_pairs(args.pairs)
        labelled = pairs_mod.labelled_utterances(all_pairs)
        pairs_from = str(args.pairs)
    pairs = pairs_mod.subset(all_pairs, args.max_pairs, seed=args.seed)
    check_scorers()
    conv = vc.load(args.model, vocoder=args.vocoder, device=args.device, strength=args.strength,
                   match=args.match, match_high=args.match_high, adapt_steps=args.adapt)
    model_path = Path(args.model) if args.model else DEFAULT_MODEL
    model_sha1 = file_sha1(model_path)
    out = Path(args.out)
    runner.check_signature(out, {"model_sha1": model_sha1, "vocoder": args.vocoder, "strength": conv.strength,
                                 "match": conv.match, "match_high": conv.match_high,
                                 "adapt_steps": conv.adapt_steps})
    progress = not args.no_progress
    print(f"evaluating {len(pairs)} of {len(all_pairs)} pairs -> {out}", file=sys.stderr)

    scorer = runner.Scorer(conv)
    records = runner.score_pairs(scorer, pairs, out, progress=progress, systems=systems, shard=shard)
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]} done; when every shard is, run the same command without "
              f"--shard to write the report", file=sys.stderr)
        return 0
    speakers, feats, problems = scorer.codes(labelled, progress=progress)
    ecapa_embeddings = feats.pop("ecapa", np.zeros((0, 1)))      # not a probe: the probes stay as they were

    def calibrate(embeddings):
        try:
            return speaker.calibrate(embeddings, speakers)
        except ValueError as e:
            return {"threshold": None, "note": f"not computed: {e}"}

    if args.threshold is not None:
        calibration = {"threshold": args.threshold, "note": "given with --threshold."}
    else:
        calibration = calibrate(feats.get("resemblyzer", np.zeros((0, 1))))
    calibration["unreadable"] = problems
    calibrations = {"resemblyzer": calibration, "ecapa": {**calibrate(ecapa_embeddings), "unreadable": problems}}
    probe = probes.speaker_probes(feats, speakers) if feats else {"skipped": "no labelled utterances"}
    meta = {"model": str(model_path), "model_sha1": model_sha1, "vocoder": args.vocoder, "strength": conv.strength,
            "match": conv.match, "match_high": conv.match_high, "adapt_steps": conv.adapt_steps,
            "precision": getattr(conv, "precision", "fp32"),
            "device": args.device, "pairs_from": pairs_from, "pairs_available": len(all_pairs),
            "max_pairs": args.max_pairs, "threads": torch.get_num_threads(), "systems": systems,
            "ceiling_is_target": any(p.ceiling == p.target for p in pairs),
            "second_verifier": {"name": ecapa.NAME, "package": f"{ecapa.PACKAGE} {ecapa.package_version()}"},
            "second_recogniser": {"name": moonshine.NAME, "package": f"{moonshine.DISTRIBUTION} {moonshine.package_version()}"}}
    rep = report.build(records, calibrations, probe, meta, systems=systems)
    rep["speed"]["generated"] = datetime.datetime.now().isoformat(timespec="seconds")
    md = report.write(out, rep, records)
    row = rep["systems"].get("converted")
    summary = (f"converted: sim to target {report.fmt(row['sim_target'], 3)} (Resemblyzer), "
               f"{report.fmt(row['ecapa_sim_target'], 3)} (ECAPA), CER {report.fmt(row['cer'], 1, True)} %"
               if row else f"systems: {', '.join(systems)}")
    print(f"wrote {md}: {rep['pairs']['scored']} pairs scored, {rep['pairs']['failed']} failed; {summary}",
          file=sys.stderr)
    return 0 if rep["pairs"]["failed"] == 0 else 1
