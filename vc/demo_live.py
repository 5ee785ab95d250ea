"""The web page's Live tab: speak into the microphone, hear yourself in another voice (vc.stream.Live).

``add_live_tab`` builds the tab inside the page's gr.Tabs (vc/demo.py) and wires its events. A take
runs from Record to Stop: the microphone's stream event (``live_push``) drops each chunk into the
visitor's inbox at once, and one long event (``live_play``, a generator feeding a streaming output)
converts what the inbox holds, so a slow conversion never makes the browser hold chunks back.
"""
from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import soxr

from .audio import AudioError
from .page import (EXAMPLES, VOCODER_CHOICES, _LOCK, Refusal, load_converter, messages, not_speech,
                   pick_model, warning_box, wav_bytes)

log = logging.getLogger(__name__)
LIVE_CHUNK_S = 0.25             # the microphone's chunks (Gradio's stream_every)
LIVE_ALGORITHMIC_S = 0.25       # vc.stream.Live.latency_s with its defaults
LIVE_GAP_S = 1.0                # no chunk for this long: the next one starts a new take
LIVE_TIME_LIMIT_S = 300         # one take at most (it holds a worker while it lasts)
LIVE_EXAMPLES = ["so762-0461_m", "libri-3080_f", "so762-2022_f", "libri-2609_m"]
LIVE_EXAMPLE_LABELS = ["man (speechocean762)", "woman (LibriSpeech)", "woman (speechocean762)", "man (LibriSpeech)"]

_LIVE: dict[str, dict] = {}                # session -> {"inbox": chunks, "stopped": Event}


def live_session(session_hash: str) -> dict:
    """The Live tab's state of one visitor: the microphone's chunks not yet converted, and
    whether Stop was pressed. Made by whichever comes first, the first chunk or the take."""
    with _LOCK:
        return _LIVE.setdefault(session_hash, {"inbox": queue.Queue(), "stopped": threading.Event()})


def add_live_tab(models: dict[str, Path], model_dropdown, *, default_vocoder: str = "hifigan",
                 max_seconds: float = 30, concurrency: int = 2):
    """The Live tab, inside the caller's ``gr.Blocks`` and ``gr.Tabs``: its components and events.
    ``models``: {label: checkpoint} as the page offers them; ``model_dropdown``: the page's model
    choice (shared with the swap tab); ``concurrency``: takes at once (each holds a worker)."""
    import gradio as gr

    def live_voice(target, vocoder, model):
        """(converter, speaker vector) of the Live tab's voice, or a Refusal."""
        model = pick_model(models, model)
        if not target:
            raise Refusal("Pick the voice first (upload, record or an example clip), then speak.")
        conv = load_converter(models, model, vocoder, max_seconds)
        try:
            return conv, conv.speaker(target)
        except AudioError as e:
            name = Path(e.path).name
            raise Refusal(f"The voice ({name}): {e.problem.replace(e.path, name)}") from None

    def live_push(chunk, request: gr.Request):
        """The microphone's stream event: one chunk ((sample rate, int16 samples), the new audio
        only) into this visitor's inbox, at once. Gradio keeps only the newest chunk of a stream
        event that is still busy, so the conversion runs elsewhere (live_play)."""
        if chunk is not None:
            live_session(request.session_hash)["inbox"].put(chunk)
        return gr.skip()

    def live_stop(request: gr.Request):
        live_session(request.session_hash)["stopped"].set()

    def live_play(target, vocoder="hifigan", model=None, request: gr.Request = None):
        """A take, from Record to Stop: converts the inbox's chunks as they come (vc.stream.Live)
        and yields (the converted audio as wav bytes, the message box) for the streaming output;
        after Stop (or LIVE_GAP_S without chunks once stopped), the rest, then it ends."""
        from .stream import Live
        hidden = gr.HTML(visible=False)
        session = live_session(request.session_hash)
        try:
            conv, speaker = live_voice(target, vocoder, model)
        except Refusal as r:
            log.info("live refused: %s", r)
            _LIVE.pop(request.session_hash, None)
            yield None, messages(r)[2]
            return
        live, resample, started = Live(conv, speaker), None, time.monotonic()
        pending, step = [], int(LIVE_CHUNK_S * conv.sample_rate)   # the browser sends 0.1 s: convert 0.25 s at once
        try:
            while time.monotonic() - started < LIVE_TIME_LIMIT_S:
                try:
                    rate, samples = session["inbox"].get(timeout=LIVE_GAP_S)
                except queue.Empty:
                    if session["stopped"].is_set():
                        break
                    continue
                if resample is None:
                    resample = soxr.ResampleStream(rate, conv.sample_rate, 1, dtype="float32")
                wav = np.asarray(samples, np.float32)
                wav = wav / 32768.0 if np.issubdtype(samples.dtype, np.integer) else wav
                pending.append(resample.resample_chunk(wav.mean(axis=1) if wav.ndim == 2 else wav))
                if sum(p.size for p in pending) >= step or session["inbox"].qsize() == 0 and session["stopped"].is_set():
                    out = live.push(np.concatenate(pending))
                    pending = []
                    if out.size:
                        yield wav_bytes(out, conv.sample_rate), hidden
            if resample is not None:                                 # the rest, then the end of the take
                pending.append(resample.resample_chunk(np.zeros(0, np.float32), last=True))
                out = np.concatenate([live.push(np.concatenate(pending)), live.finish()])
                log.info("live take: %.2f s in, %.2f s out", live.received / conv.sample_rate,
                         (live.emitted) / conv.sample_rate)
                yield (wav_bytes(out, conv.sample_rate) if out.size else None), hidden
        except Exception as e:
            log.exception("live conversion failed")
            first = (str(e).splitlines() or [""])[0]
            yield None, messages(Refusal(f"live conversion failed ({type(e).__name__}: {first})"))[2]
        finally:
            _LIVE.pop(request.session_hash, None)

    for fn in (live_push, live_stop, live_play):         # Gradio passes the visitor's request
        fn.__annotations__["request"] = gr.Request

    def live_check(target, model=None):
        """The Live tab's voice changed: warn next to it if it does not sound like clean speech."""
        hidden = gr.HTML(visible=False)
        if not target:
            return hidden, hidden
        try:
            model = pick_model(models, model)
            conv, _ = live_voice(target, "griffinlim", model)       # the model only: no vocoder needed
            line = not_speech(conv, models[model], conv.mel(conv.load(target)),
                              f"The voice ({Path(target).name})", target)
        except Refusal as r:
            return hidden, messages(r)[2]
        return warning_box(line), hidden

    with gr.Tab("Live", id="live-tab", elem_id="live-tab"):
        gr.Markdown("Pick a voice, press **Record** and speak: you hear yourself in that voice while "
                    f"you talk, about {LIVE_CHUNK_S + LIVE_ALGORITHMIC_S:.1f} s plus the computing time "
                    "later (wear headphones, or the microphone hears the output). Up to "
                    f"{LIVE_TIME_LIMIT_S // 60} minutes a take.")
        gr.Markdown("⚠️ **The Live tab needs `ffmpeg` on the server** (Gradio encodes the streamed "
                    "audio with it): `apt-get install ffmpeg`.", visible=shutil.which("ffmpeg") is None,
                    elem_id="live-no-ffmpeg")
        with gr.Row():
            with gr.Column():
                live_target = gr.Audio(label="The voice to speak in", sources=["upload", "microphone"],
                                       type="filepath", elem_id="live-target")
                live_warn = gr.HTML(visible=False, elem_id="live-warn")
                gr.Examples([[str(EXAMPLES / f"{x}.flac")] for x in LIVE_EXAMPLES], inputs=[live_target],
                            label="Example voices", example_labels=LIVE_EXAMPLE_LABELS)
                live_vocoder = gr.Radio(VOCODER_CHOICES, value=default_vocoder, label="Vocoder",
                                        elem_id="live-vocoder")
            with gr.Column():
                mic = gr.Audio(label="Speak", sources=["microphone"], streaming=True, type="numpy",
                               elem_id="live-mic")
                live_error = gr.HTML(visible=False, elem_id="live-error")
                live_take = gr.Number(value=0, visible=False)         # takes so far
                live_out = gr.Audio(label="You, in that voice", streaming=True, autoplay=True,
                                    interactive=False, elem_id="live-out")
    # each microphone chunk converted as it comes (one worker per talking visitor)
    # Record starts a take through a hidden counter: an event running on the microphone itself
    # would mark it busy, and the browser then holds its chunks back until the take ends
    mic.start_recording(lambda n: (n or 0) + 1, live_take, live_take, show_progress="hidden",
                        api_visibility="private")
    live_take.change(live_play, [live_target, live_vocoder, model_dropdown], [live_out, live_error],
                     show_progress="hidden", concurrency_limit=concurrency, api_visibility="private")
    mic.stream(live_push, mic, live_error, stream_every=LIVE_CHUNK_S, time_limit=LIVE_TIME_LIMIT_S,
               show_progress="hidden", api_visibility="private")
    mic.stop_recording(live_stop, None, None, show_progress="hidden", api_visibility="private")
    live_target.change(live_check, [live_target, model_dropdown], [live_warn, live_error], show_progress="hidden",
                       api_visibility="private")
