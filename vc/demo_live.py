"""The web page's Live tab: speak into the microphone, hear yourself in another voice (vc.stream.Live).

``add_live_tab`` builds the tab inside the page's gr.Tabs (vc/demo.py) and wires its events;
``live_routes`` is the one HTTP route it needs besides Gradio's (vc.demo.launch serves it).

A take, from Record to Stop:

    Record  the page's own capture (LIVE_JS: getUserMedia, 16-bit PCM) starts at the click, then
            live_start (Python) checks the voice and opens a take: a random token, the capability
            to send audio to it
    talking the page POSTs what it captured to /vc-live/TOKEN?seq=N&rate=R every LIVE_SEND_S, one
            request after the other (so in order, and none is lost: a slow server only makes the
            next request carry more); live_push puts each in the take's inbox; live_play (a
            generator feeding the streaming output) converts the inbox as it fills
    Stop    the page sends the rest and waits for it to arrive, then live_stop; live_play converts
            what is left and ends

Why not Gradio's own streaming microphone (gr.Audio(streaming=True).stream): in the browser test
it delivered 3.8 to 5.2 s of 6.1 to 6.5 s takes (61 to 84 %; issue 12). In Gradio 6.31 a stream
event keeps only the newest chunk (POST /gradio_api/stream/EVENT replaces the event's data: a
chunk that arrives while the previous one is still being handled is lost; the browser uploads
each 0.1 s chunk, so they arrive in bursts); the browser drops the chunks recorded before the
stream event has started on the server (stream_state "waiting") and those still uploading when
Stop is pressed; and it never batches them (the Audio component's ``pending`` flag is never set).
Gradio's change event on the same component does run once per chunk, but as separate uploads
and queue jobs they arrive out of order. The capture uses a ScriptProcessorNode (deprecated, but in
every browser; an AudioWorklet needs a module file): at Stop, under 2,048 samples (46 ms) that
the browser has not handed over yet are left out.
"""
from __future__ import annotations

import logging
import queue
import secrets
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
LIVE_PATH = "vc-live"           # POST /vc-live/TOKEN?seq=N&rate=R, body: 16-bit little-endian mono PCM
LIVE_SEND_S = 0.1               # the page sends what it captured this often
LIVE_CHUNK_S = 0.25             # converted at once (vc.stream.Live steps)
LIVE_ALGORITHMIC_S = 0.25       # vc.stream.Live.latency_s with its defaults
LIVE_GAP_S = 1.0                # the take waits this long for a chunk before it looks at Stop again
LIVE_IDLE_S = 10.0              # no chunk for this long before Stop: the page is gone, the take ends
LIVE_TIME_LIMIT_S = 300         # one take at most (it holds a worker while it lasts)
LIVE_RATES = (8000, 192000)     # microphone sample rates accepted
LIVE_MAX_REQUEST_S = 30.0       # seconds of audio one request may carry (a page that fell behind)
LIVE_EXAMPLES = ["so762-0461_m", "libri-3080_f", "so762-2022_f", "libri-2609_m"]
LIVE_EXAMPLE_LABELS = ["man (speechocean762)", "woman (LibriSpeech)", "woman (speechocean762)", "man (LibriSpeech)"]

_LIVE: dict[str, dict] = {}     # take token -> its state (open_take)

# The page's microphone: window.vcLive, made once. start() (at the Record click) captures
# 16-bit PCM; open(token) sends it to the take, every LIVE_SEND_S, each request after the last
# has been answered; stop() sends the rest and waits until all of it has arrived.
LIVE_JS = """
() => {
  if (window.vcLive) return;
  const live = {
    token: null, rate: 0, seq: 0, parts: [], captured: 0, sent: 0, failed: "",
    ctx: null, media: null, node: null, timer: null, sending: Promise.resolve(), ready: null, opened: null,
    async start() {
      this.cancel();
      this.captured = 0; this.sent = 0; this.seq = 0; this.failed = "";
      this.ready = new Promise((resolve) => { this.opened = resolve; });
      if (!navigator.mediaDevices) return "a page served over plain http gets no microphone: use https or localhost";
      this.ctx = new AudioContext();       // made at the click: browsers let a page start audio then
      try {
        this.media = await navigator.mediaDevices.getUserMedia({audio: true});
        await this.ctx.resume();
      } catch (e) {
        this.cancel();
        return `${e.name}: ${e.message}`;
      }
      this.rate = this.ctx.sampleRate;
      const source = this.ctx.createMediaStreamSource(this.media);
      this.node = this.ctx.createScriptProcessor(2048, 1, 1);
      const mute = this.ctx.createGain();
      mute.gain.value = 0;
      this.node.onaudioprocess = (e) => {
        const x = e.inputBuffer.getChannelData(0);
        this.parts.push(new Float32Array(x));
        this.captured += x.length;
      };
      source.connect(this.node);
      this.node.connect(mute);
      mute.connect(this.ctx.destination);
      this.timer = setInterval(() => this.flush(), SEND_MS);
      return "";
    },
    open(token) {
      this.token = token || null;
      if (!token) this.cancel();
      if (this.opened) this.opened();
      this.flush();
    },
    flush() {
      if (!this.token || !this.parts.length) return;
      const n = this.parts.reduce((a, p) => a + p.length, 0);
      const pcm = new Int16Array(n);
      let i = 0;
      for (const p of this.parts) for (const v of p) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
      this.parts = [];
      const root = (window.gradio_config && window.gradio_config.root) || window.location.href;
      const url = new URL(`PATH/${this.token}?seq=${this.seq++}&rate=${this.rate}`, root.endsWith("/") ? root : root + "/");
      const token = this.token;
      this.sending = this.sending.then(async () => {
        if (this.token !== token) return;
        const r = await fetch(url, {method: "POST", body: pcm.buffer,
                                    headers: {"Content-Type": "application/octet-stream"}});
        if (r.ok) this.sent += n; else { this.failed = `HTTP ${r.status}`; this.cancel(); }
      }).catch((e) => { this.failed = String(e); this.cancel(); });
    },
    async stop() {
      if (this.ctx) await Promise.race([this.ready, new Promise((r) => setTimeout(r, 30000))]);
      this.release();
      this.flush();
      await this.sending;
      return this.token || "";
    },
    release() {
      clearInterval(this.timer);
      if (this.node) this.node.onaudioprocess = null;
      if (this.media) this.media.getTracks().forEach((t) => t.stop());
      if (this.ctx) this.ctx.close();
      this.ctx = this.media = this.node = null;
    },
    cancel() {
      this.release();
      this.parts = [];
      this.token = null;
    },
  };
  window.vcLive = live;
}
""".replace("SEND_MS", str(round(LIVE_SEND_S * 1000))).replace("PATH", LIVE_PATH)

RECORD_JS = f"""async (target, vocoder, model, _) => {{
  ({LIVE_JS})();
  const problem = await window.vcLive.start();
  return [target, vocoder, model, problem];
}}"""
OPEN_JS = "(take) => { window.vcLive.open(take); return [take]; }"
STOP_JS = "async (take) => [await window.vcLive.stop() || take]"


def open_take(conv, voice) -> str:
    """A new take into the ``voice`` (vc.convert.Voice) with the Converter ``conv``: its token. Takes left
    behind (their live_play never ran) are forgotten after LIVE_TIME_LIMIT_S."""
    now = time.monotonic()
    take = secrets.token_urlsafe(16)
    with _LOCK:
        for old in [k for k, s in _LIVE.items() if now - s["opened"] > LIVE_TIME_LIMIT_S + 60]:
            del _LIVE[old]
        _LIVE[take] = {"inbox": queue.Queue(), "stopped": threading.Event(), "seq": 0, "samples": 0,
                       "opened": now, "conv": conv, "voice": voice}
    return take


def live_push(take: str, seq: int, rate: int, pcm: bytes) -> int:
    """One request of the page's microphone: the ``seq``-th piece (from 0) of take ``take``,
    16-bit little-endian mono PCM at ``rate`` Hz, into the take's inbox. -> the HTTP status:
    204 taken; 404 no such take (never opened, over, or stopped); 409 not the next piece; 400 a
    bad rate or an odd byte count; 413 too long."""
    with _LOCK:
        session = _LIVE.get(take)
        if session is None or session["stopped"].is_set():
            return 404
        if not LIVE_RATES[0] <= rate <= LIVE_RATES[1] or len(pcm) % 2:
            return 400
        samples = len(pcm) // 2
        if samples > LIVE_MAX_REQUEST_S * rate or session["samples"] + samples > (LIVE_TIME_LIMIT_S + 60) * rate:
            return 413
        if seq != session["seq"]:
            return 409
        session["seq"] += 1
        session["samples"] += samples
    session["inbox"].put((rate, np.frombuffer(pcm, "<i2")))
    return 204


def live_routes() -> list:
    """The route the Live tab's page sends its microphone to, for FastAPI (vc.demo.launch gives
    it to Gradio's server through ``app_kwargs``)."""
    from fastapi import Request, Response
    from fastapi.routing import APIRoute

    async def live_chunk(take: str, seq: int, rate: int, request: Request) -> Response:
        body, limit = bytearray(), 2 * LIVE_MAX_REQUEST_S * LIVE_RATES[1]
        async for part in request.stream():            # read no more than a request may carry
            body += part
            if len(body) > limit:
                return Response(status_code=413)
        return Response(status_code=live_push(take, seq, rate, bytes(body)))

    live_chunk.__annotations__["request"] = Request     # a name, not a string: FastAPI passes the request
    return [APIRoute(f"/{LIVE_PATH}/{{take}}", live_chunk, methods=["POST"], include_in_schema=False)]


def add_live_tab(models: dict[str, Path], model_dropdown, *, default_vocoder: str = "hifigan",
                 max_seconds: float = 30, concurrency: int = 2):
    """The Live tab, inside the caller's ``gr.Blocks`` and ``gr.Tabs``: its components and events.
    ``models``: {label: checkpoint} as the page offers them; ``model_dropdown``: the page's model
    choice (shared with the swap tab); ``concurrency``: takes at once (each holds a worker).
    The page must be served with ``live_routes()`` (vc.demo.launch does it)."""
    import gradio as gr

    def voice_clip(conv, target) -> np.ndarray:
        """The Live tab's voice, read and checked once, or a Refusal."""
        try:
            return conv.load(target, "target waveform")
        except AudioError as e:
            name = Path(e.path).name
            raise Refusal(f"The voice ({name}): {e.problem.replace(e.path, name)}") from None

    def live_voice(target, vocoder, model):
        """(converter, vc.convert.Voice) of the Live tab's voice, or a Refusal."""
        model = pick_model(models, model)
        if not target:
            raise Refusal("Pick the voice first (upload, record or an example clip), then speak.")
        conv = load_converter(models, model, vocoder, max_seconds)
        return conv, conv.target(voice_clip(conv, target))

    def live_start(target, vocoder="hifigan", model=None, microphone_problem=""):
        """Record: (the take's token, the message box, Record, Stop). The page's capture has
        started already; ``microphone_problem``: why it could not (the browser's words)."""
        try:
            if microphone_problem:
                raise Refusal(f"The microphone is not available ({microphone_problem}): allow this "
                              "page to use it, then press Record again.")
            take = open_take(*live_voice(target, vocoder, model))
        except Refusal as r:
            log.info("live refused: %s", r)
            return "", messages(r)[2], gr.skip(), gr.skip()
        return take, gr.HTML(visible=False), gr.Button(visible=False), gr.Button(visible=True)

    def live_stop(take):
        """Stop, once the page has sent all it captured: the take converts the rest and ends."""
        session = _LIVE.get(take or "")
        if session is not None:
            session["stopped"].set()
        return gr.Button(visible=True), gr.Button(visible=False)

    def live_play(take):
        """The take: converts its inbox as it fills (vc.stream.Live) and yields (the converted
        audio as wav bytes, the message box, Record, Stop) for the streaming output; after Stop,
        the rest, then it ends (also after LIVE_TIME_LIMIT_S, or LIVE_IDLE_S without a chunk)."""
        from .stream import Live
        session = _LIVE.get(take or "")
        if session is None:                      # refused (the message is shown already)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        hidden, same = gr.HTML(visible=False), gr.skip()
        conv = session["conv"]
        voice = session["voice"]
        live, resample = Live(conv, voice.vector, voice.frames), None
        started = last = time.monotonic()
        pending, step = [], int(LIVE_CHUNK_S * conv.sample_rate)

        def take_in(rate, samples):            # 16-bit samples at the microphone's rate -> pending
            nonlocal resample
            if resample is None:
                resample = soxr.ResampleStream(rate, conv.sample_rate, 1, dtype="float32")
            pending.append(resample.resample_chunk(samples.astype(np.float32) / 32768.0))

        try:
            while time.monotonic() - started < LIVE_TIME_LIMIT_S:
                try:
                    take_in(*session["inbox"].get(timeout=LIVE_GAP_S))
                except queue.Empty:
                    if session["stopped"].is_set() or time.monotonic() - last > LIVE_IDLE_S:
                        break
                    continue
                last = time.monotonic()
                if sum(p.size for p in pending) >= step or session["inbox"].qsize() == 0 and session["stopped"].is_set():
                    out = live.push(np.concatenate(pending))
                    pending = []
                    if out.size:
                        yield wav_bytes(out, conv.sample_rate), hidden, same, same
            with _LOCK:                                              # no more chunks for this take
                _LIVE.pop(take, None)
            while not session["inbox"].empty():                      # any that came in meanwhile
                take_in(*session["inbox"].get())
            if resample is not None:                                 # the rest, then the end of the take
                pending.append(resample.resample_chunk(np.zeros(0, np.float32), last=True))
                out = np.concatenate([live.push(np.concatenate(pending)), live.finish()])
                log.info("live take: %.2f s in, %.2f s out", live.received / conv.sample_rate,
                         live.emitted / conv.sample_rate)
                yield (wav_bytes(out, conv.sample_rate) if out.size else None), hidden, same, same
        except Exception as e:
            log.exception("live conversion failed")
            first = (str(e).splitlines() or [""])[0]
            yield None, messages(Refusal(f"live conversion failed ({type(e).__name__}: {first})"))[2], same, same
        finally:
            with _LOCK:
                _LIVE.pop(take, None)
        yield same, same, gr.Button(visible=True), gr.Button(visible=False)   # Record again

    def live_check(target, model=None):
        """The Live tab's voice changed: warn next to it if it does not sound like clean speech."""
        hidden = gr.HTML(visible=False)
        if not target:
            return hidden, hidden
        try:
            model = pick_model(models, model)
            conv = load_converter(models, model, "griffinlim", max_seconds)   # the model only: no vocoder
            voice = voice_clip(conv, target)
            line = not_speech(conv, models[model], conv.mel(voice), f"The voice ({Path(target).name})", target,
                              conv.pitch(voice))
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
                record = gr.Button("🎙️ Record", variant="primary", elem_id="live-record")
                stop = gr.Button("⏹️ Stop", variant="stop", visible=False, elem_id="live-stop")
                live_error = gr.HTML(visible=False, elem_id="live-error")
                live_take = gr.Textbox(visible=False)                 # the take's token
                live_out = gr.Audio(label="You, in that voice", streaming=True, autoplay=True,
                                    interactive=False, elem_id="live-out")
    # Record: the page's capture starts at the click (RECORD_JS), then the take opens, then it plays
    record.click(live_start, [live_target, live_vocoder, model_dropdown, live_take],
                 [live_take, live_error, record, stop], js=RECORD_JS, show_progress="hidden",
                 api_visibility="private") \
        .then(live_play, live_take, [live_out, live_error, record, stop], js=OPEN_JS, show_progress="hidden",
              concurrency_limit=concurrency, api_visibility="private")
    stop.click(live_stop, live_take, [record, stop], js=STOP_JS, show_progress="hidden", api_visibility="private")
    live_target.change(live_check, [live_target, model_dropdown], [live_warn, live_error], show_progress="hidden",
                       api_visibility="private")
