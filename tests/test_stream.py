"""Live conversion (vc.stream, Converter.stream): a real clip fed in 0.25 s chunks.

The shipped model with HiFi-GAN: the streamed output must match the offline conversion of the
same clip (log-mel), have no clicks, and make its seams exactly as offline vocoding would. A tiny
random model for lengths and bad input. Speed is measured by benchmarks/live_latency.py, not here.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vc
from vc.audio import AudioError, load_audio
from vc.convert import DEFAULT_MODEL
from vc.features import mel_spectrogram
from vc.stream import Live

SR, HOP = 22050, 256
CHUNK = int(0.25 * SR)                  # 5,512 samples: not a multiple of the hop


def chunks(wav, size=CHUNK):
    return [wav[i: i + size] for i in range(0, wav.size, size)]


def run(live, pieces):
    outs = [live.push(c) for c in pieces]
    return outs + [live.finish()]


def jumps_over_offline(outs, offline):
    """The streamed outputs' largest sample-to-sample jump within 3 samples of a seam between
    outputs, and anywhere, each over the offline output's largest."""
    out = np.concatenate(outs)
    limit, jumps = np.abs(np.diff(offline)).max(), np.abs(np.diff(out))
    seams = np.cumsum([o.size for o in outs])[:-1]
    seams = seams[(seams > 2) & (seams < out.size - 2)]
    assert len(seams) > 5
    return max(jumps[s - 3: s + 2].max() for s in seams) / limit, jumps.max() / limit


@pytest.fixture(scope="module")
def shipped():
    """The shipped model at strength 1 (the target's own vector; `strong` below tests the model's
    own strength): offline and live then differ only by how they are computed."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip("no default model installed")
    return vc.load(strength=1.0)


@pytest.fixture(scope="module")
def pair(shipped, example_clips):
    """(source waveform, target speaker vector, offline converted mel, offline output), as
    Converter.convert makes them without the loudness matching (a stream cannot know the
    loudness of what is still to come)."""
    source, target = example_clips[1], example_clips[2]   # libri-3080_f in the voice of so762-0461_m
    wav = load_audio(source, SR)
    speaker = shipped.speaker(target)
    mel = shipped.convert_mel(shipped.mel(wav), speaker)
    return wav, speaker, mel, shipped.vocode(mel)


@pytest.fixture(scope="module")
def streamed(shipped, pair):
    """The streamed conversion of the same clip in 0.25 s chunks, and the frame borders of its steps."""
    wav, speaker, _, _ = pair
    live = Live(shipped, speaker)
    outs, borders = [], []
    for c in chunks(wav):
        outs.append(live.push(c))
        borders.append(live.done)
    outs.append(live.finish())
    return np.concatenate(outs), outs, sorted(set(borders))


def test_streamed_matches_offline_away_from_chunk_borders(shipped, example_clips, pair, streamed):
    """Mean |log-mel difference| of the outputs, over the frames after the first second (the
    model's window is still filling before) and more than 2 frames from a step's border.
    Measured with v13: 0.24 on this pair, 0.30 on libri-2609_m -> so762-2022_f (v12: 0.25 on each).
    For scale: HiFi-GAN's own copy-synthesis error on these clips is 0.24 to 0.26, and the offline
    conversion of the same clip into another voice (so762-2022_f) differs by 0.60 (v13 and v12; 0.58
    with v11, 0.59 with v10); the bar, 0.35, sits between. Over every frame after the first second,
    borders included: 0.24 with v13, 0.26 with v12, 0.24 with v11 (since v12 the model also reads
    Whisper's features, over the window too)."""
    wav, _, _, offline = pair
    out, _, borders = streamed
    assert out.size == offline.size == wav.size // HOP * HOP
    diff = (mel_spectrogram(out) - mel_spectrogram(offline)).abs().mean(0).numpy()   # per frame
    frames = np.arange(diff.size)
    near = np.zeros(diff.size, bool)
    for b in borders:
        near |= np.abs(frames - b) <= 2
    keep = (frames >= SR // HOP) & ~near
    assert keep.sum() > diff.size // 2
    assert diff[keep].mean() < 0.35, diff[keep].mean()
    other = shipped.vocode(shipped.convert_mel(shipped.mel(wav), shipped.speaker(example_clips[3])))
    assert (mel_spectrogram(other) - mel_spectrogram(offline)).abs().mean() > 0.45   # the bar discriminates


def test_no_clicks(pair, streamed):
    """No sample-to-sample jump at the seams between chunks above the largest one the offline
    output has, and none anywhere above 1.25 times it: the stream is not the same computation as
    the offline conversion, so its loudest natural jump differs a little (measured: 0.79 times with
    v13, 0.81 with v12 and 1.04 with v11 at strength 1; 0.95 with v10 against its offline conversion
    at strength 1.25), where a click jumps by up to the waveform's peak."""
    at_seams, anywhere = jumps_over_offline(streamed[1], pair[3])
    assert at_seams <= 1
    assert anywhere <= 1.25


@pytest.fixture(scope="module")
def strong(example_clips):
    """The shipped model at its own strength (v11 to v13: 1.375), offline and streamed: live conversion
    decodes source + s * (target - source) as offline does, its source vector the running mean of
    the windows' own vectors."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip("no default model installed")
    conv = vc.load()
    wav = load_audio(example_clips[1], SR)
    speaker = conv.speaker(example_clips[2])
    offline = conv.vocode(conv.convert_mel(conv.mel(wav), speaker))
    outs = run(Live(conv, speaker), chunks(wav))
    plain = np.concatenate(run(Live(vc.load(strength=1.0), speaker), chunks(wav)))
    return conv.strength, offline, outs, plain


def test_stream_converts_at_the_models_strength(strong):
    """At the model's strength the stream matches the offline conversion at that strength as
    closely as test_streamed_matches_offline asks at strength 1 (0.35 after the first second;
    measured 0.25 with v13, 0.27 with v12 and 0.23 with v11 at 1.375), and closer than a stream at
    strength 1 does (measured 0.32 with v13; v12 0.33, v11 0.32). No clicks: no jump at the seams above
    the offline's largest (measured 0.23 times it with v13, 0.30 with v12, 0.29 with v11), none
    anywhere above 1.5 times it (measured 0.93 times with v13, 1.03 with v12, 1.25 with v11,
    mid-chunk: a stronger voice, computed in windows, has its own loudest natural jump; a click
    jumps by up to the waveform's peak)."""
    strength, offline, outs, plain = strong
    streamed = np.concatenate(outs)
    assert strength != 1.0
    assert streamed.size == plain.size == offline.size

    def diff(out):
        return (mel_spectrogram(out) - mel_spectrogram(offline)).abs().mean(0).numpy()[SR // HOP:].mean()

    assert diff(streamed) < 0.35, diff(streamed)
    assert diff(streamed) < diff(plain) - 0.02, (diff(streamed), diff(plain))
    at_seams, anywhere = jumps_over_offline(outs, offline)
    assert at_seams <= 1
    assert anywhere <= 1.5


def test_vocoder_seams_are_made_as_offline(shipped, pair):
    """Fed the offline converted mel, the stream's vocoder stage gives the offline waveform
    within 1.5 % rms (measured 0.4 % with v11 and with the s47 frame-attention candidate, whose
    sharper mels make HiFi-GAN's output depend more on right context): every held-back frame is
    made again with its context and the pieces line up to the sample. Held back 12 frames (before
    round s48) the error was 2.3 % and 4.6 %; held back 4 frames, over 20 % (61 % with v5)."""
    _, speaker, mel, offline = pair
    rms = np.sqrt(np.mean(offline ** 2))

    def error(**options):
        live = Live(shipped, speaker, **options)
        ends = list(range(21, mel.shape[1], 21)) + [mel.shape[1]]
        outs = []
        for end in ends:
            live.mel_out = mel[:, live.out0:]            # the converted frames, as if decoded
            outs.append(live._vocode(end, final=end == ends[-1]))
        out = np.concatenate(outs)
        assert out.size == offline.size
        return np.sqrt(np.mean((out - offline) ** 2)) / rms

    assert error() < 0.015
    assert error(hold=4, voc_context=8) > 0.2


def test_input_mel_equals_offline(shipped, pair):
    """The mel of each frame is computed once its samples have all arrived: as offline."""
    wav, speaker = pair[0], pair[1]
    live = Live(shipped, speaker)
    for c in chunks(wav[: 3 * SR], 3000):
        live.push(c)
    offline = mel_spectrogram(wav[: 3 * SR])
    assert live.ready == (3 * SR - 640) // HOP + 1
    assert torch.allclose(live.mel_in, offline[:, live.mel0: live.ready], atol=1e-4)


# -- the tiny model: lengths, the API, bad input ---------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return vc.load(tiny_checkpoint, vocoder="griffinlim")


@pytest.mark.parametrize("size", [CHUNK, 1000, 3 * SR])
def test_each_chunk_gives_its_length_and_the_total_is_conserved(tiny, example_clips, size):
    wav = load_audio(example_clips[0], SR)
    outs = list(tiny.stream(chunks(wav, size), example_clips[1]))
    assert len(outs) == len(chunks(wav, size)) + 1                 # one per chunk, then the rest
    assert sum(o.size for o in outs) == wav.size // HOP * HOP        # as offline
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outs)
    if size == CHUNK:
        live = Live(tiny, tiny.speaker(example_clips[1]))
        delay = int(np.ceil(live.latency_frames)) + 1
        steady = outs[delay * HOP // size + 2: -2]                   # after the first output
        assert steady and all(abs(o.size - size) <= HOP for o in steady)


def test_latency_is_what_it_says(tiny, example_clips):
    """After n samples in, the output has all but about ``latency_frames`` frames of them."""
    wav = load_audio(example_clips[0], SR)
    live = Live(tiny, tiny.speaker(example_clips[1]))
    out = sum(live.push(c).size for c in chunks(wav[: 2 * SR]))
    assert 0 <= 2 * SR - out - live.latency_frames * HOP < HOP
    assert abs(live.latency_s - 0.261) < 0.005


def test_bad_input_is_one_line(tiny, example_clips, tmp_path):
    stream = tiny.stream([np.zeros(100, np.float32), np.full(100, np.nan, np.float32)], example_clips[1])
    next(stream)
    with pytest.raises(AudioError, match="^live input chunk 2: contains NaN or infinite samples$"):
        next(stream)
    with pytest.raises(AudioError, match="expected a 1-D waveform"):
        next(tiny.stream([np.zeros((2, 3, 4))], example_clips[1]))
    with pytest.raises(AudioError, match="file not found"):             # at the call, not the first chunk
        tiny.stream([], tmp_path / "missing.wav")
    assert [o.size for o in tiny.stream([], example_clips[1])] == [0]  # nothing in, nothing out


# -- the noise gate ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paused(shipped, example_clips):
    """so762-2022_f with 3 s of -70 dBFS white noise inserted at its quietest hop between 1.4 and
    1.9 s (a pause longer than the model's 2 s window), into the voice of libri-2609_m, streamed
    in 0.25 s chunks with the gate and without: (clip, pause start, pause end, {gate: output},
    offline conversion of the clip without its pause)."""
    wav = load_audio(example_clips[3], SR)
    n = wav.size // HOP
    level = 10 * np.log10(np.mean(wav[: n * HOP].reshape(n, HOP) ** 2, axis=1) + 1e-12)
    a, b = int(1.4 * SR) // HOP, int(1.9 * SR) // HOP
    cut = (int(np.argmin(level[a:b])) + a) * HOP
    noise = 10 ** (-70 / 20) * np.random.default_rng(0).standard_normal(3 * SR)
    clip = np.concatenate([wav[:cut], noise.astype(np.float32), wav[cut:]])
    speaker = shipped.speaker(example_clips[0])
    outs = {gate: np.concatenate(run(Live(shipped, speaker, gate=gate), chunks(clip))) for gate in (True, False)}
    offline = shipped.vocode(shipped.convert_mel(shipped.mel(wav), speaker))
    return clip, cut, cut + 3 * SR, outs, offline


def test_gate_silences_a_long_pause(paused):
    """Over the pause (from 0.3 s after its start, the gate's hold and a margin, to 0.1 s before
    its end) the gated output is silent: measured exactly 0. Without the gate the same stretch
    babbles at -21 dB under the speech's RMS (instance normalisation of a window of noise)."""
    _, start, end, outs, _ = paused
    rms = {}
    for gate, out in outs.items():
        pause = out[start + int(0.3 * SR): end - int(0.1 * SR)]
        speech = np.concatenate([out[SR:start], out[end:]])
        rms[gate] = np.sqrt(np.mean(pause.astype(np.float64) ** 2)) / np.sqrt(np.mean(speech.astype(np.float64) ** 2))
    assert rms[True] < 1e-3, rms            # -60 dB at most (measured: silence)
    assert rms[False] > 1e-2, rms           # the bar discriminates (measured: -21 dB)


def test_gate_keeps_speech_and_the_stream_stays_close_to_offline(paused):
    """Where the input is speech the gate changes nothing: the gated and ungated outputs are the
    same on 95 % of the speech's samples at least (measured: all of them; the gate may close in
    a long gap between words). And away from the pause, before it (after the first second) and more
    than the model's 2 s window after it, the stream stays as close to the offline conversion of
    the clip without its pause as test_streamed_matches_offline asks (0.35): measured 0.29 (v11 and
    v10, both at strength 1). In the 2 s after the pause the window still holds its noise: 0.40
    there with v10, 0.47 with v11 (gated)."""
    clip, start, end, outs, offline = paused
    gated, ungated = outs[True], outs[False]
    speech = np.r_[0:start, end:gated.size]
    assert np.mean(gated[speech] == ungated[speech]) > 0.95
    back = np.concatenate([gated[:start], gated[end:]])[: offline.size]   # the clip without its pause
    diff = (mel_spectrogram(back) - mel_spectrogram(offline[: back.size])).abs().mean(0).numpy()
    frames, cut = np.arange(diff.size), start // HOP
    away = ((frames >= SR // HOP) & (frames < cut - 3)) | (frames > cut + 2 * SR // HOP)
    assert away.sum() > 50
    assert diff[away].mean() < 0.35, diff[away].mean()
