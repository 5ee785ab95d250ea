"""The web page: two recordings in, both conversions out, with pictures of what the model did.

    python app.py [--model CKPT] [--host 127.0.0.1] [--port 7860] [--share]     (or: vc demo ...)

One button runs ``swap`` (also an API: ``gradio_client.Client(url).predict(..., api_name="/swap")``):
A's words in B's voice and B's words in A's voice, with the time of each step. A second step
draws the mel-spectrograms and the split code. Bad input comes back as one line, never a
traceback: on the page next to the clip it is about (until that input changes), through the API
as gr.Error (gradio_client's AppError). Models are loaded once per process and shared by all visitors.

This file is the swap page, the page as a whole (build_app) and its command line; the Live tab is
vc/demo_live.py and what both use is vc/page.py (imports point one way: page <- demo_live <- demo).
"""
from __future__ import annotations

import atexit
import copy
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .audio import AudioError, match_loudness, save_audio
from .convert import Converter, Timings, check_strength, swap_names
from .demo_live import add_live_tab, live_routes
from .match import check_weight
from .model import toward
from .page import (EXAMPLES, NO_MODEL, VOCODER_CHOICES, Refusal, get_converter, load_converter, messages,
                   model_choices, not_speech, pick_model, set_threads, warning_box)

log = logging.getLogger(__name__)
EXAMPLE_PAIRS = [("libri-3080_f", "libri-2609_m"), ("so762-2022_f", "so762-0461_m"),
                 ("libri-2609_m", "so762-2022_f")]
DESCRIPTION = "Serve the web page: upload or record two clips, get both conversions."
KEEP_OUTPUTS_S = 600            # our output files live this long (Gradio copies them at once)


def _clean_old(folder: Path, age_s: float = KEEP_OUTPUTS_S):
    now = time.time()
    for sub in folder.iterdir():
        if now - sub.stat().st_mtime > age_s:
            shutil.rmtree(sub, ignore_errors=True)


def vocode_both(conv: Converter, mab, mba, progress=lambda *a, **k: None):
    """Both directions through the vocoder -> (A->B wav, B->A wav). With one torch thread per
    conversion (`vc demo`'s default: cores / concurrency) and a core to spare, B -> A runs in a
    second thread while A -> B runs here: one visitor gets two cores, and single-threaded
    operators never make OpenMP threads wait on each other. The progress bar moves after each
    piece of either (long clips are vocoded in pieces of vc.vocoder.CHUNK_FRAMES frames)."""
    import torch
    total = mab.shape[-1] + mba.shape[-1]
    done = {"ab": 0, "ba": 0}
    desc = f"vocoding ({conv.vocoder_name})"

    def count(key):
        def cb(frames, _):
            done[key] = frames
        return cb

    def report(frames, _):              # from this thread only: gr.Progress belongs to it
        done["ab"] = frames
        progress(0.3 + 0.65 * (done["ab"] + done["ba"]) / total, desc=desc)

    progress(0.3, desc=desc)
    t = time.perf_counter()
    mine, other = copy.copy(conv), copy.copy(conv)
    mine.timings, other.timings = Timings(), Timings()      # each thread its own timings
    if torch.get_num_threads() * 2 <= (os.cpu_count() or 1):
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(other.vocode, mba, count("ba"))
            ab = mine.vocode(mab, report)
            ba = future.result()        # re-raises a failure of B -> A here
    else:
        ab = mine.vocode(mab, report)
        ba = other.vocode(mba, lambda frames, n: (count("ba")(frames, n), report(done["ab"], n)))
    conv.timings.add("vocoder", time.perf_counter() - t)
    return ab, ba


def swap_clips(conv: Converter, a, b, match_input_loudness: bool = True, progress=lambda *a, **k: None):
    """The page's work, step by step (timed into ``conv.timings``): two clips (paths) ->
    (A->B wav, B->A wav, pictures) where pictures holds the mels (n_mels, frames), codes and the
    inputs' pitch features (None for a model that reads none)."""
    import torch
    wa, wb = conv.load(a), conv.load(b)
    ma, mb = conv.mel(wa), conv.mel(wb)                          # (n_mels, frames) each
    pa, pb = conv.pitch(wa), conv.pitch(wb)                      # None unless the model reads pitch
    progress(0.2, desc="splitting words from voice")
    with torch.inference_mode():
        t = time.perf_counter()
        ca, cb = conv.model.encode(ma, pa), conv.model.encode(mb, pb)
        if conv.adapt_steps:             # as Converter.voice
            ca, cb = ca.with_speaker(conv.voice(ma, pa)[None]), cb.with_speaker(conv.voice(mb, pb)[None])
        s = conv.strength                # as Converter.convert_mel
        fa, fb = conv.bank(ma), conv.bank(mb)                    # real frames, when matching or recalling
        mab = conv.decode(ca, toward(ca.speaker, cb.speaker, s)[0], fb)   # A's content, B's voice
        mba = conv.decode(cb, toward(cb.speaker, ca.speaker, s)[0], fa)
        mab, mba = conv.matched(mab, fb), conv.matched(mba, fa)  # vc.match, when on
        conv.timings.add("model", time.perf_counter() - t)
    ab, ba = vocode_both(conv, mab, mba, progress)
    if match_input_loudness:
        ab, ba = match_loudness(ab, wa), match_loudness(ba, wb)
    hop = conv.mel_cfg.hop_length / conv.sample_rate
    pictures = dict(mels={"A (input)": ma.cpu().numpy(), "A's words in B's voice": mab.cpu().numpy(),
                          "B (input)": mb.cpu().numpy(), "B's words in A's voice": mba.cpu().numpy()},
                    code=tuple(x[0].cpu().numpy() for x in (ca.content, cb.content, ca.speaker, cb.speaker)),
                    pitch={k: None if p is None else p.cpu().numpy() for k, p in (("A", pa), ("B", pb))},
                    hop_seconds=hop, code_seconds=hop * conv.model.cfg.downsample)
    return ab, ba, pictures


def model_default(models: dict[str, Path], key: str, check, fallback: float) -> float:
    """The first model's own setting ``key`` (its checkpoint's meta, checked by ``check``:
    conversion strength, envelope matching); ``fallback`` without one or without a model."""
    if not models:
        return fallback
    from .checkpoint import read_checkpoint
    try:
        return check(read_checkpoint(next(iter(models.values()))).get("meta", {}).get(key, fallback))
    except Exception:               # an unreadable model is refused when it is used, not here
        return fallback


def build_app(model_paths=(), *, max_upload_mb: float = 20, max_seconds: float = 30,
              default_vocoder: str = "hifigan", concurrency: int = 2, preload: bool = False):
    """The page as a gr.Blocks (queued, not launched). ``model_paths``: checkpoints given with --model;
    ``concurrency``: conversions run at once (others wait in the queue); ``preload``: load the
    first model now, so that the first visitor does not wait."""
    import gradio as gr

    from .plots import code_figure, mel_figure

    def fail(message: str):           # for API callers: gradio_client raises AppError(message)
        return gr.Error(message, print_exception=False)

    models = model_choices(model_paths)
    if models and preload:
        get_converter(next(iter(models.values())), default_vocoder, max_seconds)
    out_dir = Path(tempfile.mkdtemp(prefix="vc-demo-"))
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)

    def check_clip(path, which: str) -> str:
        if not path:
            raise Refusal(f"Clip {which} is missing: upload or record a clip for {which}.", which)
        size_mb = os.path.getsize(path) / 2 ** 20
        if size_mb > max_upload_mb:
            raise Refusal(f"Clip {which} ({Path(path).name}): file too large: {size_mb:.1f} MB "
                          f"(the limit is {max_upload_mb:g} MB)", which)
        return path

    def convert(clip_a, clip_b, vocoder, model, match_input_loudness, strength, match, match_high, progress):
        """A's words in B's voice and B's words in A's voice -> (A->B wav, B->A wav, seconds per
        step, pictures for the next step). Every failure is a Refusal: one line, and the clip
        it is about. ``strength``, ``match``, ``match_high``: vc.convert's (None: the model's own)."""
        model = pick_model(models, model)
        a, b = check_clip(clip_a, "A"), check_clip(clip_b, "B")
        try:
            strength = None if strength is None else check_strength(strength)
            match = None if match is None else check_weight(match)
            match_high = None if match_high is None else check_weight(match_high, "match-high")
        except ValueError as e:
            raise Refusal(str(e)) from None
        t0 = time.perf_counter()
        progress(0.0, desc="loading the model")
        conv = copy.copy(load_converter(models, model, vocoder, max_seconds))
        conv.timings = Timings()    # per-call timings and settings: the shared Converter is never written to
        if strength is not None:
            conv.strength = strength
        if match is not None:
            conv.match = match
        if match_high is not None:
            conv.match_high = match_high
        progress(0.1, desc="reading the clips")
        try:
            ab, ba, pictures = swap_clips(conv, a, b, match_input_loudness, progress)
            t = time.perf_counter()
            _clean_old(out_dir)
            folder = out_dir / uuid.uuid4().hex
            name_ab, name_ba = swap_names(a, b)     # two recordings both called audio.wav: A and B
            out_ab = save_audio(folder / name_ab, ab, conv.sample_rate)
            out_ba = save_audio(folder / name_ba, ba, conv.sample_rate)
        except AudioError as e:
            which = "A" if e.path == str(a) else "B"
            name = Path(e.path).name            # never show the server's temporary path
            raise Refusal(f"Clip {which} ({name}): {e.problem.replace(e.path, name)}", which) from None
        except Exception as e:
            log.exception("swap failed")
            first = (str(e).splitlines() or [""])[0]
            raise Refusal(f"conversion failed ({type(e).__name__}: {first}); see the server log") from None
        conv.timings.add("save", time.perf_counter() - t)
        t = time.perf_counter()
        warnings = {which: not_speech(conv, models[model], pictures["mels"][f"{which} (input)"],
                                      f"Clip {which} ({Path(path).name})", path, pictures["pitch"][which])
                    for which, path in (("A", a), ("B", b))}
        conv.timings.add("anomaly", time.perf_counter() - t)
        stages = {k: round(v, 3) for k, v in conv.timings.stages.items()}
        stages["total"] = round(time.perf_counter() - t0, 3)
        stages["audio_seconds"] = round((ab.size + ba.size) / conv.sample_rate, 2)
        return str(out_ab), str(out_ba), stages, dict(pictures, folder=str(folder), warnings=warnings)

    def swap(clip_a, clip_b, vocoder="hifigan", model=None, match_input_loudness=True, strength=None, match=None,
             match_high=None, progress=gr.Progress()):
        """The API (/swap): both conversions, or gr.Error with the page's one-line message."""
        try:
            return convert(clip_a, clip_b, vocoder, model, match_input_loudness, strength, match, match_high,
                           progress)
        except Refusal as r:
            log.info("refused: %s", r)
            raise fail(str(r)) from None

    def swap_on_page(clip_a, clip_b, vocoder="hifigan", model=None, match_input_loudness=True, strength=None, match=None,
                     match_high=None, progress=gr.Progress()):
        """The button: like the API, but a refusal stays on the page next to the clip it is about
        (or under the button) until the input changes, instead of a toast that fades."""
        try:
            results = convert(clip_a, clip_b, vocoder, model, match_input_loudness, strength, match, match_high,
                              progress)
            return (*results, *messages(None), *(warning_box(results[3]["warnings"][w]) for w in "AB"))
        except Refusal as r:
            log.info("refused: %s", r)
            return (None, None, None, None, *messages(r), *(warning_box(None) for _ in "AB"))

    def draw(pictures):
        """The mel-spectrograms and the split code, as PNG files."""
        import matplotlib.pyplot as plt
        if not pictures:
            return None, None
        paths = []
        mel_fig = mel_figure(pictures["mels"], hop_seconds=pictures["hop_seconds"])
        code_fig = code_figure(*pictures["code"], code_seconds=pictures["code_seconds"])
        for name, fig in (("mels.png", mel_fig), ("code.png", code_fig)):
            paths.append(str(Path(pictures["folder"]) / name))
            fig.savefig(paths[-1], dpi=90)
            plt.close(fig)
        return tuple(paths)

    with gr.Blocks(title="vc: voice swap", analytics_enabled=False, delete_cache=(1800, 3600)) as app:
        gr.Markdown("# vc: voice swap\nGive two recordings of two people, **A** and **B** (0.5 s to "
                    f"{max_seconds:g} s, wav/flac/ogg/opus/mp3, up to {max_upload_mb:g} MB). One click "
                    "gives A's words in B's voice, and B's words in A's voice.")
        gr.Markdown(f"⚠️ **N{NO_MODEL[1:]}.**", visible=not models, elem_id="no-model")
        with gr.Tabs():
            with gr.Tab("Swap voices", id="swap-tab"):
                with gr.Row():
                    with gr.Column():
                        clip_a = gr.Audio(label="A", sources=["upload", "microphone"], type="filepath", elem_id="clip-a")
                        error_a = gr.HTML(visible=False, elem_id="error-a")
                        warn_a = gr.HTML(visible=False, elem_id="warn-a")          # not clean speech: still converted
                    with gr.Column():
                        clip_b = gr.Audio(label="B", sources=["upload", "microphone"], type="filepath", elem_id="clip-b")
                        error_b = gr.HTML(visible=False, elem_id="error-b")
                        warn_b = gr.HTML(visible=False, elem_id="warn-b")
                gr.Examples([[str(EXAMPLES / f"{x}.flac"), str(EXAMPLES / f"{y}.flac")] for x, y in EXAMPLE_PAIRS],
                            inputs=[clip_a, clip_b], label="Example pairs (dev speakers, never heard in training)",
                            example_labels=["LibriSpeech: woman ↔ man", "speechocean762: woman ↔ man",
                                            "man (LibriSpeech) ↔ woman (speechocean762)"])
                with gr.Accordion("Options", open=False):
                    vocoder = gr.Radio(VOCODER_CHOICES, value=default_vocoder, label="Vocoder")
                    model = gr.Dropdown(list(models), value=next(iter(models), None), label="Model",
                                        visible=len(models) > 1)
                    loudness = gr.Checkbox(value=True, label="Match the loudness of each output to its input")
                    strength = gr.Slider(0.0, 2.0, value=model_default(models, "strength", check_strength, 1.0),
                                         step=0.05, elem_id="strength",
                                         label="Voice strength: 1 = the other's speaker vector; more moves "
                                               "further from the speaker's own voice, and costs words and "
                                               "quality (README: Conversion strength)")
                    match = gr.Slider(0.0, 1.0, value=model_default(models, "match", check_weight, 0.0), step=0.05,
                                      elem_id="match",
                                      label="Envelope matching: how far each frame's spectral envelope moves "
                                            "toward the other's nearest real frames (0 = off); more is closer "
                                            "to their voice, and costs words and quality (README: Envelope matching)")
                    match_high = gr.Slider(0.0, 1.0, step=0.05, elem_id="match-high",
                                           value=model_default(models, "match_high",
                                                               lambda w: check_weight(w, "match-high"), 0.0),
                                           label="High-band matching: how far the bands above ~2.5 kHz of each "
                                                 "vowel-like frame move toward the other's nearest real frames "
                                                 "(0 = off); more is closer to their voice, and past 0.5 costs "
                                                 "words (README: High-band matching)")
                button = gr.Button("Swap voices", variant="primary", elem_id="swap")
                error = gr.HTML(visible=False, elem_id="error")          # a refusal about no clip in particular
                api_button = gr.Button(visible=False)                    # only a trigger for the /swap API
                with gr.Row():
                    out_ab = gr.Audio(label="A's words in B's voice", type="filepath", interactive=False,
                                      buttons=["download"], elem_id="out-ab")
                    out_ba = gr.Audio(label="B's words in A's voice", type="filepath", interactive=False,
                                      buttons=["download"], elem_id="out-ba")
                timings = gr.JSON(label="Seconds per step (and of audio made)", elem_id="timings")
                gr.Markdown("**Mel-spectrograms**: each conversion keeps its source's words (the same pattern "
                            "over time) in the other voice (pitch and timbre).")
                mels = gr.Image(show_label=False, type="filepath", interactive=False, elem_id="mels")
                gr.Markdown("**The split code**: what is said (content over time) and who says it (speaker vectors).")
                code = gr.Image(show_label=False, type="filepath", interactive=False, elem_id="code")
                gr.Markdown("Example clips: LibriSpeech (CC BY 4.0) and speechocean762; see "
                            "`vc/examples/README.md` for attribution.")
            add_live_tab(models, model, default_vocoder=default_vocoder, max_seconds=max_seconds,
                         concurrency=concurrency)
        pictures = gr.State()
        inputs = [clip_a, clip_b, vocoder, model, loudness, strength, match, match_high]
        # one progress indicator (the timings box), not one per output
        button.click(swap_on_page, inputs, [out_ab, out_ba, timings, pictures, error_a, error_b, error, warn_a, warn_b],
                     show_progress_on=[timings], api_visibility="private") \
            .then(draw, pictures, [mels, code], show_progress_on=[mels], api_visibility="private")
        api_button.click(swap, inputs, [out_ab, out_ba, timings, pictures], api_name="swap")
        # a message stays until what it is about changes
        hide = gr.HTML(visible=False)
        clip_a.change(lambda: (hide, hide, hide), None, [error_a, error, warn_a], show_progress="hidden",
                      api_visibility="private")
        clip_b.change(lambda: (hide, hide, hide), None, [error_b, error, warn_b], show_progress="hidden",
                      api_visibility="private")
        for option in (vocoder, model, loudness, strength, match, match_high):
            option.change(lambda: hide, None, error, show_progress="hidden", api_visibility="private")
    app.queue(default_concurrency_limit=concurrency, max_size=64)
    return app


def launch(app, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           max_upload_mb: float = 20, block: bool = True, quiet: bool = False):
    """Start serving ``app``; returns its local URL (``block=False``: in a background thread).
    Served with the Live tab's microphone route (vc.demo_live.live_routes). Gradio's own start-up
    lines are replaced by ours: it would tell the user to "set `share=True` in `launch()`", where
    the flag of this command is --share."""
    _, url, _ = app.launch(server_name=host, server_port=port, share=share,
                           prevent_thread_lock=True, max_file_size=f"{max_upload_mb:g}mb",
                           allowed_paths=[str(EXAMPLES)], ssr_mode=False, quiet=True, footer_links=["api"],
                           app_kwargs={"routes": live_routes()})
    url = url or f"http://{host}:{port}/"
    if not quiet:
        print(f"* Running on local URL:  {url}"
              + ("" if share else "\n* For a public link (gradio.live, needs internet), start with --share"),
              flush=True)
    if block:
        app.block_thread()
    return url


def run(args) -> int:
    from .checkpoint import read_checkpoint
    from .cli import UsageError
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)                                 # one line per refused input
    for path in args.model or []:
        read_checkpoint(path)                                  # a bad --model fails now, in one line
    set_threads(args.concurrency)
    app = build_app(args.model or [], max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                    concurrency=args.concurrency, preload=True)
    if not model_choices(args.model or []):
        print(f"warning: {NO_MODEL}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill = Ctrl-C: close, clean temp files
    try:
        launch(app, args.host, args.port, args.share, args.max_upload_mb)
    except OSError as e:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {e}") from None
    return 0


def add_arguments(p):
    p.add_argument("--model", metavar="CKPT", action="append",
                   help="checkpoint to offer (repeatable; default: the models in vc/pretrained/)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also a public gradio.live link (needs internet)")
    p.add_argument("--max-upload-mb", type=float, default=20, help="largest accepted upload (default 20)")
    p.add_argument("--max-seconds", type=float, default=30, help="longest accepted clip (default 30)")
    p.add_argument("--concurrency", type=int, default=2,
                   help="conversions at once, each with cores/N torch threads; others queue (default 2)")
    p.set_defaults(func=run)


def register(sub):
    p = sub.add_parser("demo", help="the web page (http://127.0.0.1:7860)", description=DESCRIPTION)
    add_arguments(p)


def main(argv=None) -> int:
    """``python app.py ARGS``: the same flags as ``vc demo`` and the same one-line errors."""
    import argparse

    from .checkpoint import CheckpointError
    from .cli import UsageError
    parser = argparse.ArgumentParser(prog="app.py", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (CheckpointError, UsageError, OSError, ValueError) as e:
        print(f"app.py: error: {e}", file=sys.stderr)
        return 2
