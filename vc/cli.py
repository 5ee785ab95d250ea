"""The ``vc`` command. Each sub-command lives with the code it runs; this file only wires them.

Exit status: 0 success, 1 some rows of a batch failed, 2 bad input or a wrong command (with a
one-line message on stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

DESCRIPTION = """\
vc: one-shot voice conversion. Give it two recordings, A and B, of any two people:
it says A's words in B's voice, and B's words in A's voice.

  vc convert SOURCE.wav TARGET.wav -o OUT.wav   SOURCE's words in TARGET's voice
  vc swap A.wav B.wav -o OUT_DIR                 both directions at once
  vc batch PAIRS.tsv -o OUT_DIR                  thousands of pairs, resumable
  vc demo                                        the web page (http://127.0.0.1:7860)
  vc train / vc evaluate / vc export             make, measure and ship your own model

Audio: wav, flac, ogg, opus or mp3, any sample rate, mono or stereo, 0.5 s to 30 min
(--max-minutes); long recordings are converted piece by piece in bounded memory.
Without --model the installed default model is used.
Run `vc COMMAND --help` for the options of one command.
"""


class UsageError(Exception):
    """A wrong command line: printed as one line, exit status 2."""


def add_model_options(p: argparse.ArgumentParser, vocoder: bool = True):
    p.add_argument("--model", metavar="CKPT", help="checkpoint to use (default: the installed default model)")
    if vocoder:
        p.add_argument("--vocoder", default="hifigan", metavar="NAME",
                       help="hifigan: natural (default); griffinlim: no neural vocoder, robotic but fast; "
                            "FILE.pt: HiFi-GAN with fine-tuned generator weights "
                            "(scripts/probe_vocoder_adapt.py --save)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps ...")
    p.add_argument("--strength", type=float, metavar="S",
                   help="how far the voice moves from the source's: the decoder gets source + S * "
                        "(target - source) of their speaker vectors; 1 = the target's own vector, more "
                        "pushes further from the source (default: the model's own, see MODEL_CARD.md)")
    p.add_argument("--match", type=float, metavar="W",
                   help="envelope matching: move each output frame's spectral envelope by W (0 = off, "
                        "up to 1) toward its nearest real frames of the target (vc/match.py; "
                        "default: the model's own, see MODEL_CARD.md)")
    p.add_argument("--match-high", type=float, metavar="W",
                   help="high-band matching: move the bands above ~2.5 kHz of each vowel-like output "
                        "frame by W (0 = off, up to 1) toward its nearest real frames of the target "
                        "(vc/match.py; default: the model's own, see MODEL_CARD.md)")
    p.add_argument("--adapt", type=int, default=0, metavar="N",
                   help="refine each clip's speaker vector by N steps, until the decoder rebuilds the "
                        "clip best with it (one-shot adaptation; ~1 s per clip per 50 steps on one core; "
                        "default 0: the speaker encoder's vector as it is)")


def add_conversion_options(p: argparse.ArgumentParser):
    """--precision and --max-minutes, of the commands that convert files (convert, swap, batch)."""
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="HiFi-GAN arithmetic: bf16 is faster on CPUs with AVX512-BF16 or AMX, "
                        "same quality; auto (default): bf16 where supported, else fp32")
    p.add_argument("--max-minutes", type=float, default=30.0, metavar="M",
                   help="longest input accepted, in minutes (default 30)")


def max_seconds(args) -> float:
    """--max-minutes in seconds, checked (UsageError)."""
    if not args.max_minutes > 0:
        raise UsageError("--max-minutes must be more than 0")
    return args.max_minutes * 60.0


def _set_threads():
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))


def check_strength_option(args):
    """--strength, if given, from 0 to vc.convert.MAX_STRENGTH, --match and --match-high, if given,
    from 0 to vc.match.MAX_WEIGHT, and --adapt (UsageError)."""
    from .convert import check_adapt_steps, check_strength
    from .match import check_weight
    try:
        if getattr(args, "strength", None) is not None:
            check_strength(args.strength)
        if getattr(args, "match", None) is not None:
            check_weight(args.match)
        if getattr(args, "match_high", None) is not None:
            check_weight(args.match_high, "match-high")
        check_adapt_steps(getattr(args, "adapt", 0))
    except ValueError as e:
        raise UsageError(f"--{e}") from None


def check_model_options(args):
    """Every option of a conversion command, before the model is loaded (one line, exit 2)."""
    from .convert import check_device
    check_device(args.device)
    check_strength_option(args)
    if hasattr(args, "max_minutes"):
        max_seconds(args)
    if args.model and not Path(args.model).is_file():
        from .checkpoint import CheckpointError
        raise CheckpointError(f"{args.model}: checkpoint not found")


def warn_not_speech(conv, args, inputs):
    """One line on stderr per input that does not sound like clean speech (vc.anomaly); only with
    a threshold calibrated on the model file in use. The conversion goes on."""
    from .anomaly import warn_inputs
    from .convert import default_model_path
    warn_inputs(conv, args.model or default_model_path(), inputs)


def cmd_convert(args) -> int:
    import vc
    from .audio import check_output
    check_model_options(args)
    check_output(args.output, inputs=(args.source, args.target))
    conv = vc.load(args.model, vocoder=args.vocoder, device=args.device, precision=args.precision,
                   max_seconds=max_seconds(args), strength=args.strength, match=args.match,
                   match_high=args.match_high, adapt_steps=args.adapt)
    warn_not_speech(conv, args, (args.source, args.target))
    out = conv.convert_file(args.source, args.target, args.output)
    print(f"wrote {out}  ({args.source}'s words in {args.target}'s voice)")
    return 0


def cmd_swap(args) -> int:
    import vc
    from .audio import check_output, save_audio
    from .convert import swap_names
    from .files import check_output_folder
    check_model_options(args)
    out = check_output_folder(args.output)
    name_ab, name_ba = swap_names(args.a, args.b)
    for name in (name_ab, name_ba):
        check_output(out / name, inputs=(args.a, args.b))
    conv = vc.load(args.model, vocoder=args.vocoder, device=args.device, precision=args.precision,
                   max_seconds=max_seconds(args), strength=args.strength, match=args.match,
                   match_high=args.match_high, adapt_steps=args.adapt)
    warn_not_speech(conv, args, (args.a, args.b))
    ab, ba = conv.swap(args.a, args.b)
    for name, wav, what in ((name_ab, ab, f"{args.a}'s words in {args.b}'s voice"),
                            (name_ba, ba, f"{args.b}'s words in {args.a}'s voice")):
        print(f"wrote {save_audio(out / name, wav, conv.sample_rate)}  ({what})")
    return 0


def cmd_train(args) -> int:
    from .convert import check_device
    check_device(args.device)           # before vc.train imports and reads anything
    from .train import TrainingDiverged, main as train_main
    _set_threads()
    try:
        train_main(args.config, args.data, args.out, resume=args.resume, device=args.device,
                   steps=args.steps, progress=not args.no_progress)
    except TrainingDiverged as e:
        print(f"vc train: error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_export(args) -> int:
    from .checkpoint import CheckpointError, export_checkpoint
    from .files import check_output_file
    for path in args.checkpoint:
        if not Path(path).is_file():
            raise CheckpointError(f"{path}: checkpoint not found")
    check_strength_option(args)
    check_output_file(args.output, inputs=args.checkpoint)
    meta = {k: v for k, v in (("strength", args.strength), ("match", args.match),
                              ("match_high", args.match_high)) if v is not None}
    if args.note:
        meta["note"] = args.note
    out = export_checkpoint(args.checkpoint, args.output, meta=meta, ema=not args.raw)
    what = f"the average of {len(args.checkpoint)} models, " if len(args.checkpoint) > 1 else ""
    print(f"wrote {out} ({what}{out.stat().st_size / 1e6:.1f} MB): use it with `vc convert --model {out}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vc", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"vc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("convert", help="SOURCE's words in TARGET's voice",
                       description="Say the words of SOURCE in the voice of TARGET.")
    p.add_argument("source", help="what is said (audio file)")
    p.add_argument("target", help="who says it (audio file of the target voice)")
    p.add_argument("-o", "--output", required=True, help="output file (.wav, .flac or .ogg)")
    add_model_options(p)
    add_conversion_options(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("swap", help="A's words in B's voice and B's words in A's voice",
                       description="Convert both ways: writes A_in_voice_of_B.wav and B_in_voice_of_A.wav "
                                   "(named after the two files; A and B when both have the same name).")
    p.add_argument("a", help="first recording")
    p.add_argument("b", help="second recording")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    add_model_options(p)
    add_conversion_options(p)
    p.set_defaults(func=cmd_swap)

    p = sub.add_parser("train", help="train a model (see recipes/ for VCTK)",
                       description="Train a model; --resume continues an interrupted run exactly.")
    p.add_argument("--config", help="YAML of vc.train_config.TrainConfig fields (default: vc/configs/default.yaml)")
    p.add_argument("--data", required=True, help="manifest .tsv, VCTK root, or folder with one sub-folder per speaker")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, TensorBoard)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--steps", type=int, help="stop at this step (default: the config's steps)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for log files)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="strip training state from a checkpoint for inference",
                       description="Write the small inference-only file that --model and the web page take. "
                                   "Given several checkpoints of one architecture (fine-tunes of one "
                                   "start), write the average of their weights (a model soup).")
    p.add_argument("checkpoint", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--strength", type=float, metavar="S",
                   help="the conversion strength the model uses by default (stored in the file; "
                        "default: the checkpoint's own, else 1)")
    p.add_argument("--match", type=float, metavar="W",
                   help="the envelope-matching weight the model uses by default (stored in the file; "
                        "default: the checkpoint's own, else 0)")
    p.add_argument("--match-high", type=float, metavar="W",
                   help="the high-band matching weight the model uses by default (stored in the file; "
                        "default: the checkpoint's own, else 0)")
    p.add_argument("--note", help="a line about the model, stored in the file (meta['note'])")
    p.add_argument("--raw", action="store_true",
                   help="the weights as trained, not the run's moving average of them (for runs "
                        "trained with `ema`; without it there is only one kind)")
    p.set_defaults(func=cmd_export)

    for module in ("evaluate", "batch", "demo", "vctk_cli"):
        importlib.import_module(f"vc.{module}").register(sub)
    return parser


def main(argv=None) -> int:
    from .audio import AudioError
    from .checkpoint import CheckpointError
    from .convert import NoModelError
    from .vocoder import VocoderError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (AudioError, CheckpointError, NoModelError, VocoderError, UsageError,
            FileNotFoundError, ValueError) as e:
        print(f"vc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:      # anything else the system refuses: still one line
        print(f"vc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vc {args.command}: interrupted", file=sys.stderr)
        return 130
