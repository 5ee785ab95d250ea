"""Live conversion: audio chunks in, converted audio chunks out, while the speaker talks (issue 12).

    import vc
    conv = vc.load()
    for out in conv.stream(chunks, "target.wav"):    # chunks: float32 at conv.sample_rate, any size
        play(out)                                    # one output per input chunk, then the tail

or, driven by a callback (the web page's Live tab): ``live = Live(conv, speaker, frames)``, then
``live.push(chunk) -> wav`` for each chunk and ``live.finish() -> wav`` at the end.

How, in mel frames (hop 256 samples = 11.6 ms at 22,050 Hz; D = the model's time downsampling, 4):

    samples ─► log-mel of every frame whose 1,024-sample window has fully arrived ─► frames [0, ready)
               (each frame from real samples only, so it equals the offline frame)
    model:     content encoder + decoder (cached target speaker vector) over the last ``window``
               frames [s, ready), s a multiple of D (the codes line up with the offline ones).
               At the Converter's strength s != 1 the decoder gets source + s * (target - source)
               as offline, the source vector being the running mean of the windows' own vectors.
               Both instance-normalise over time: here over that window (~2 s), offline over the
               whole utterance; this is where streaming differs from offline most.
               Kept: the decoded frames [done, ready - lookahead). The last ``lookahead`` frames of
               a window lack the frames after them; the next window decodes them again.
    vocoder:   HiFi-GAN on the converted frames [done - voc_context, new_done): output for
               [done - hold, new_done - hold). Its last ``hold`` frames lack their right context
               (HiFi-GAN's output is wrong within ~10 frames of an edge), so they are held back and
               made again by the next piece, with ``voc_context - hold`` frames of left context;
               the first ``fade`` of them are cross-faded (linearly) from the old version to the new.
               With the defaults the stream's waveform equals the offline vocoding of the same
               mel within 1 % (rms): the only approximation left is the model's window.

Noise gate (on by default, ``gate=False`` turns it off): in a pause longer than the model's
window the window holds only background noise, and instance normalisation scales that noise up
to the level of speech: the output babbles. So each hop of input is measured (RMS, dBFS); where
the input has been quieter than ``gate_db`` (-55 dBFS) for more than ``gate_hold_s`` (0.2 s: word
ends and short gaps pass) the output is silent, and the gate opens ``gate_lead_s`` (0.05 s)
before the input gets loud again (it knows: the output runs 0.26 s behind). The gain moves from
0 to 1 over one hop (11.6 ms), so the gate does not click. -55 dBFS is under the quiet sounds of
speech and over the noise of a quiet room through a decent microphone; a noisier microphone
keeps the gate open (as without it).

Latency a speaker hears = the chunk length (a chunk is converted once it has fully arrived)
+ the frames waited for (a frame's window tail 1.5 + lookahead 8 + hold 13 frames: 0.26 s)
+ the compute time of one step; ``benchmarks/live_latency.py`` measures it. Shapes: waveforms are
1-D float32 numpy arrays; mels are (n_mels, frames) tensors.
"""
from __future__ import annotations

import numpy as np
import torch

from .audio import AudioError, as_mono
from .features import mel_spectrogram
from .model import toward

WINDOW_S = 2.0        # seconds of input mel the model sees at each step (it trained on 1.5 s)
LOOKAHEAD = 8         # frames at the right edge of a model window that are not kept (93 ms)
VOC_CONTEXT = 24      # frames of converted mel before the new ones given to the vocoder (> HOLD)
HOLD = 13             # frames of vocoder output held back, to be made again with their right context
                      # (12: up to 4.6 % rms from the offline waveform on the example clips; 13: at most 0.5 %)
FADE = 2              # of which the first are cross-faded from the old piece's version to the new
MIN_STEP = 4          # frames converted at once at least (a vocoder needs a few)
MEL_CONTEXT = 4       # frames of samples kept before the first new mel frame (a frame reaches 2.5 back)
GATE_DB = -55.0       # noise gate: a hop of input quieter than this (RMS, dBFS) is silence
GATE_HOLD_S = 0.2     # the gate stays open this long after the last loud hop (word ends)
GATE_LEAD_S = 0.05    # and opens this long before the next loud hop (onsets)


class Live:
    """The state of one live conversion into the voice ``speaker`` (speaker_dim,) with the
    Converter ``conv``. Not thread-safe: one per stream. ``frames`` (n_mels, S): the target's speech
    frames, for the Converter's matching (vc.match: frame by frame, so live as offline).
    ``gate``: silence the output where the input is silent (``gate_db``, ``gate_hold_s``,
    ``gate_lead_s``: see the module's docstring)."""

    def __init__(self, conv, speaker: torch.Tensor, frames: torch.Tensor | None = None,
                 window_s: float = WINDOW_S, lookahead: int = LOOKAHEAD,
                 voc_context: int = VOC_CONTEXT, hold: int = HOLD, fade: int = FADE, gate: bool = True,
                 gate_db: float = GATE_DB, gate_hold_s: float = GATE_HOLD_S, gate_lead_s: float = GATE_LEAD_S):
        if conv.model.cfg.pitch_channels:
            raise ValueError("live conversion cannot use a model that reads pitch (its pitch features are "
                             "standardised over the whole utterance): use the file conversion")
        self.conv, self.speaker = conv, speaker.to(conv.device)
        self.frames = None if frames is None else frames.to(conv.device)
        cfg = conv.mel_cfg
        self.hop, self.n_fft = cfg.hop_length, cfg.n_fft
        self.tail = cfg.n_fft - (cfg.n_fft - cfg.hop_length) // 2   # frame i needs samples < i*hop + tail
        self.D = conv.model.cfg.downsample
        self.window = max(2 * self.D, round(window_s * cfg.sample_rate / cfg.hop_length))
        self.lookahead, self.hold, self.fade = lookahead, hold, min(fade, hold)
        self.voc_context = max(voc_context, hold)      # the held frames are inside the next piece
        self.samples = np.zeros(0, np.float32)   # input samples from global sample `sample0` on
        self.sample0 = 0
        self.received = 0                        # input samples so far
        self.mel_in = None                       # (n_mels, frames) input mel from global frame `mel0`
        self.mel0 = 0
        self.ready = 0                           # input mel frames computed
        self.mel_out = None                      # (n_mels, frames) converted mel from global frame `out0`
        self.out0 = 0
        self.done = 0                            # converted mel frames kept and vocoded
        self.held = np.zeros(0, np.float32)      # output of frames [done - hold, done), to cross-fade
        self.emitted = 0                         # output samples returned so far
        self.chunks = 0
        self.gate, self.gate_db = gate, gate_db
        self.gate_hold = round(gate_hold_s * cfg.sample_rate / cfg.hop_length)   # in hops
        self.gate_lead = round(gate_lead_s * cfg.sample_rate / cfg.hop_length)
        self.loud = np.zeros(0, bool)            # per hop of input from hop `loud0` on: louder than gate_db
        self.loud0 = 0
        self.gate_rest = np.zeros(0, np.float32)  # input samples of a hop not yet complete
        self.own_sum, self.own_frames = 0.0, 0   # the source's own vectors so far (for the strength)

    # -- the three stages ----------------------------------------------------------------------
    def _new_mel(self, final: bool) -> None:
        """Input mel frames [ready, new ready): every complete frame, or at the end all
        ``received // hop`` frames (the last ones reflect-padded, as offline)."""
        total = self.received // self.hop
        ready = total if final else min(total, max(0, (self.received - self.tail) // self.hop + 1))
        if ready <= self.ready:
            return
        lo = max(0, self.ready - MEL_CONTEXT)                      # first frame analysed
        segment = self.samples[lo * self.hop - self.sample0:]
        if not final:
            segment = segment[: (ready - lo - 1) * self.hop + self.tail]   # just what the frames need
        mel = mel_spectrogram(torch.from_numpy(segment), self.conv.mel_cfg)[:, self.ready - lo: ready - lo]
        mel = mel.to(self.conv.device)
        self.mel_in = mel if self.mel_in is None else torch.cat([self.mel_in, mel], dim=1)
        self.ready = ready
        # keep the model window's frames and the samples the next frames need
        keep = max(0, self.ready - self.window - self.D)
        if keep > self.mel0:
            self.mel_in, self.mel0 = self.mel_in[:, keep - self.mel0:], keep
        first = max(0, self.ready - MEL_CONTEXT) * self.hop
        if first > self.sample0:
            self.samples, self.sample0 = self.samples[first - self.sample0:], first

    def _convert(self, end: int) -> None:
        """Decode the window ending at ``ready``; append its frames [done, end) to ``mel_out``."""
        start = max(0, self.ready - self.window) // self.D * self.D   # aligned with the offline codes
        window = self.mel_in[:, start - self.mel0:]                   # (n_mels, ready - start)
        with torch.inference_mode():
            code = self.conv.model.encode(window)
            speaker = self._voice(code.speaker[0], end)
            out = self.conv.decode(code, speaker, self.frames)           # (n_mels, ready - start)
        new = self.conv.matched(out[:, self.done - start: end - start], self.frames)
        self.mel_out = new if self.mel_out is None else torch.cat([self.mel_out, new], dim=1)

    def _voice(self, own: torch.Tensor, end: int) -> torch.Tensor:
        """The vector to decode frames [done, end) with, given this window's own vector ``own``: the
        target's, or at the Converter's strength s != 1 source + s * (target - source) as offline,
        the source being the mean of every window's own vector so far, weighted by the frames each
        adds (one window's vector alone would move the voice from window to window); with the
        gate, by its loud frames only (a window of a pause is noise, scaled up)."""
        if self.conv.strength == 1.0:
            return self.speaker
        n = end - self.done
        if self.gate:
            n = int(self.loud[max(0, self.done - self.loud0): max(0, end - self.loud0)].sum())
        self.own_sum = self.own_sum + n * own
        self.own_frames += n
        source = self.own_sum / self.own_frames if self.own_frames else own
        return toward(source, self.speaker, self.conv.strength)

    def _measure(self, wav: np.ndarray) -> None:
        """The gate's side of new input: which of its complete hops are loud."""
        x = np.concatenate([self.gate_rest, wav])
        n = x.size // self.hop
        power = np.mean(x[: n * self.hop].reshape(n, self.hop).astype(np.float64) ** 2, axis=1)
        self.loud = np.concatenate([self.loud, 10 * np.log10(power + 1e-20) > self.gate_db])
        self.gate_rest = x[n * self.hop:]

    def _gain(self, start: int, n: int) -> np.ndarray:
        """The gate's gain (0 to 1) for output samples [start, start + n): 1 within hold hops
        after or lead hops before a loud hop of input, else 0; linear between hop centres."""
        hop = self.hop
        blocks = np.arange(max(0, start // hop - 1), (start + n - 1) // hop + 2)
        counts = np.concatenate([[0], np.cumsum(self.loud)])          # loud hops before each index
        lo = np.clip(blocks - self.gate_hold - self.loud0, 0, self.loud.size)
        hi = np.clip(blocks + self.gate_lead + 1 - self.loud0, 0, self.loud.size)
        open_ = (counts[hi] - counts[lo] > 0).astype(np.float32)
        gain = np.interp(np.arange(start, start + n) + 0.5, blocks * hop + hop / 2, open_)
        keep = max(0, (start + n) // hop - self.gate_hold - 2)           # what later calls still need
        if keep > self.loud0:
            self.loud, self.loud0 = self.loud[keep - self.loud0:], keep
        return gain.astype(np.float32)

    def _vocode(self, end: int, final: bool) -> np.ndarray:
        """Vocode the converted frames up to ``end``; -> the output samples now final."""
        hop = self.hop
        lo = max(0, self.done - self.voc_context)
        mel = self.mel_out[:, lo - self.out0: end - self.out0]
        wav = self.conv.vocode_piece(mel[None])[0].cpu().numpy()         # ((end - lo) * hop,)
        start = (self.done - lo) * hop - self.held.size                    # the held frames' place
        stop = wav.size if final else max(start, wav.size - self.hold * hop)
        out = wav[start:stop].copy()
        n = min(self.fade * hop, self.held.size, out.size)
        if n:                                                              # cross-fade old -> new
            ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
            out[:n] = self.held[:n] * (1 - ramp) + out[:n] * ramp
        self.held = wav[stop:].copy()
        self.done = end
        keep = max(0, end - self.voc_context)                              # drop what no piece needs
        if keep > self.out0:
            self.mel_out, self.out0 = self.mel_out[:, keep - self.out0:], keep
        return out

    # -- the API ---------------------------------------------------------------------------
    def push(self, chunk) -> np.ndarray:
        """One input chunk (1-D float32 at the converter's rate; stereo (T, 2) is averaged) ->
        the converted samples now ready (possibly none at the start). Output sample i is the
        conversion of input sample i: the outputs, concatenated, run ``latency`` behind."""
        self.chunks += 1
        wav = self._check(chunk)
        if self.gate:
            self._measure(wav)
        step = (self.window // 2) * self.hop           # a long chunk: in steps the window covers
        outs = [np.zeros(0, np.float32)]
        for i in range(0, wav.size, step):
            self.samples = np.concatenate([self.samples, wav[i: i + step]])
            self.received += wav[i: i + step].size
            outs.append(self._step(final=False))
        return np.concatenate(outs)

    def finish(self) -> np.ndarray:
        """The end of the input: the rest of the conversion (all of it when the input ended
        with a partial frame: in all, ``received // hop * hop`` samples, as offline)."""
        return self._step(final=True)

    def _step(self, final: bool) -> np.ndarray:
        nothing = np.zeros(0, np.float32)
        if final and self.received < self.n_fft:        # under 46 ms in all: too short to analyse
            out = np.zeros(self.received // self.hop * self.hop - self.emitted, np.float32)
            self.emitted += out.size
            return out
        self._new_mel(final)
        end = self.ready if final else self.ready - self.lookahead
        if end - self.done < (1 if final else MIN_STEP):    # wait for a few frames at least
            out, self.held = (self.held, nothing) if final else (nothing, self.held)
        else:
            self._convert(end)
            out = self._vocode(end, final)
        if self.gate and out.size:
            out = out * self._gain(self.emitted, out.size)
        self.emitted += out.size
        return out

    def _check(self, chunk) -> np.ndarray:
        name = f"live input chunk {self.chunks}"
        wav = as_mono(chunk, name)
        if not np.isfinite(wav).all():
            raise AudioError(name, "contains NaN or infinite samples")
        return wav

    @property
    def latency_frames(self) -> float:
        """Frames the output waits for beyond the chunk itself: the last frame's window tail,
        the model's lookahead and the vocoder's held frames."""
        return (self.tail - self.hop) / self.hop + self.lookahead + self.hold

    @property
    def latency_s(self) -> float:
        """The algorithmic latency beyond the chunk length, in seconds (compute time excluded)."""
        return self.latency_frames * self.hop / self.conv.sample_rate


def stream(conv, chunks, target, **options):
    """``Converter.stream``: ``chunks`` (an iterable of 1-D float32 arrays at ``conv.sample_rate``)
    -> one converted array per chunk, then one with the rest. ``target``: a path, a waveform or a
    list of clips of the voice (its speaker vector is computed once); ``options``: of :class:`Live`."""
    voice = conv.target(*(target if isinstance(target, (list, tuple)) else [target]))
    live = Live(conv, voice.vector, voice.frames, **options)
    return _run(live, chunks)      # the target is checked now, not at the first chunk


def _run(live: Live, chunks):
    for chunk in chunks:
        yield live.push(chunk)
    yield live.finish()
