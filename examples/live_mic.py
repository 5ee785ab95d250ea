"""Speak into the microphone and hear yourself in another voice (vc.Converter.stream).

    python examples/live_mic.py VOICE.wav                  # microphone -> speakers (needs sounddevice)
    python examples/live_mic.py VOICE.wav --file IN.wav -o OUT.wav   # a file read in 0.25 s chunks

The microphone needs the optional `sounddevice` package (pip install sounddevice; it is not a
dependency of vc). Wear headphones: otherwise the microphone hears the output. Without
sounddevice, or with --file, a file is read in chunks, as a microphone would deliver it, and the
streamed conversion is written to -o: the same API.
"""
from __future__ import annotations

import argparse
import queue
import sys
import time

import numpy as np
import soundfile as sf

import vc
from vc.audio import AudioError, load_audio

CHUNK_S = 0.25


def from_file(conv, voice, path, out):
    """The API without a microphone: chunks of a file in, converted chunks out."""
    wav = load_audio(path, conv.sample_rate, trim=False, normalize=False)
    size = int(CHUNK_S * conv.sample_rate)
    chunks = (wav[i: i + size] for i in range(0, wav.size, size))
    t = time.perf_counter()
    pieces = list(conv.stream(chunks, voice))       # one array per chunk, then the tail
    seconds = time.perf_counter() - t
    sf.write(out, np.concatenate(pieces), conv.sample_rate)
    print(f"wrote {out}: {wav.size / conv.sample_rate:.1f} s in {len(pieces) - 1} chunks of {CHUNK_S} s, "
          f"computed in {seconds:.1f} s (real-time factor {seconds * conv.sample_rate / wav.size:.2f})")


def from_microphone(conv, voice):
    import sounddevice as sd
    inbox: queue.Queue = queue.Queue()
    size = int(CHUNK_S * conv.sample_rate)

    def chunks():
        while True:
            yield inbox.get()

    print("speak (Ctrl-C to stop); you hear yourself in the voice about "
          f"{CHUNK_S + 0.25:.2f} s + the computing time later")
    with sd.InputStream(samplerate=conv.sample_rate, channels=1, dtype="float32", blocksize=size,
                        callback=lambda data, *_: inbox.put(data[:, 0].copy())), \
            sd.OutputStream(samplerate=conv.sample_rate, channels=1, dtype="float32") as speaker:
        for out in conv.stream(chunks(), voice):
            if out.size:
                speaker.write(out[:, None])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("voice", help="a clip of the voice to speak in")
    p.add_argument("--file", help="read this file in chunks instead of the microphone")
    p.add_argument("-o", "--output", default="live_out.wav", help="with --file: where to write (default live_out.wav)")
    p.add_argument("--vocoder", choices=("hifigan", "griffinlim"), default="hifigan")
    args = p.parse_args(argv)
    try:
        conv = vc.load(vocoder=args.vocoder)
        if args.file:
            from_file(conv, args.voice, args.file, args.output)
            return 0
        try:
            import sounddevice  # noqa: F401
        except (ImportError, OSError) as e:
            print(f"live_mic.py: no microphone access ({type(e).__name__}: {e}); install it with "
                  "`pip install sounddevice`, or convert a file in chunks with --file IN.wav", file=sys.stderr)
            return 2
        from_microphone(conv, args.voice)
    except AudioError as e:
        print(f"live_mic.py: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
