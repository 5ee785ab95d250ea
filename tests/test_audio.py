"""vc.audio: every kind of bad input gets one clear line naming the file; good input comes out
mono float32 at 22,050 Hz, trimmed and loudness-normalised."""
import numpy as np
import pytest
import soundfile as sf

from vc.audio import AudioError, load_audio, normalize_loudness, save_audio, trim_silence
from conftest import speechlike, write_wav


def test_any_rate_and_channels_become_mono_22050(tmp_path):
    path = write_wav(tmp_path / "stereo.flac", 2.0, sr=44100, channels=2)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(wav.size / 22050 - 2.0) < 0.1


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_formats(tmp_path, ext):
    path = tmp_path / f"clip{ext}"
    sf.write(str(path), speechlike(1.5, 16000), 16000)
    assert abs(load_audio(path).size / 22050 - 1.5) < 0.15


def test_silence_is_trimmed_and_loudness_normalised(tmp_path):
    sr = 16000
    speech = speechlike(1.0, sr) * 0.01                      # quiet speech ...
    wav = np.concatenate([np.zeros(sr), speech, np.zeros(sr)])  # ... between two seconds of silence
    sf.write(str(tmp_path / "q.wav"), wav, sr)
    out = load_audio(tmp_path / "q.wav")
    assert abs(out.size / 22050 - 1.0) < 0.1
    frames = out[: out.size // 256 * 256].reshape(-1, 256)
    rms = np.sqrt((frames ** 2).mean(1))
    loud = rms[rms >= np.median(rms)]
    assert abs(20 * np.log10(np.sqrt((loud ** 2).mean())) - (-23)) < 0.5


def test_normalisation_never_clips():
    wav = np.zeros(22050, np.float32)
    wav[::100] = 0.9   # sparse clicks: RMS target would push the peak far above 1
    assert np.abs(normalize_loudness(wav)).max() <= 0.99 + 1e-6


def test_trim_keeps_all_of_a_loud_signal():
    wav = speechlike(1.0, 22050)
    assert trim_silence(wav).size > 0.9 * wav.size


def bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    (tmp_path / "notes.txt").write_text("hello")
    sf.write(str(tmp_path / "silent.wav"), np.zeros(32000, np.float32), 16000)
    sf.write(str(tmp_path / "short.wav"), speechlike(0.2, 16000), 16000)
    sf.write(str(tmp_path / "long.wav"), speechlike(3.0, 16000), 16000)
    sf.write(str(tmp_path / "nosamples.wav"), np.zeros(0, np.float32), 16000)
    nan = speechlike(1.0, 16000)
    nan[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), nan, 16000, subtype="FLOAT")
    return {  # file -> words the message must contain
        "missing.wav": "not found", "empty.wav": "empty", "corrupt.wav": "corrupt",
        "notes.txt": "unsupported format", "silent.wav": "silence", "short.wav": "too short",
        "long.wav": "too long", "nosamples.wav": "empty", "nan.wav": "NaN",
    }


def test_every_bad_input_has_its_one_line_message(tmp_path):
    for name, words in bad_files(tmp_path).items():
        with pytest.raises(AudioError) as e:
            load_audio(tmp_path / name, max_seconds=2.0)
        msg = str(e.value)
        assert "\n" not in msg and name in msg and words in msg, msg


def test_save_audio_is_atomic_and_resamples(tmp_path):
    out = save_audio(tmp_path / "sub" / "x.flac", speechlike(1.0, 22050), 22050, out_rate=16000)
    info = sf.info(str(out))
    assert info.samplerate == 16000 and abs(info.duration - 1.0) < 0.01
    assert [p.name for p in out.parent.iterdir()] == ["x.flac"]   # no temporary left behind


def _arrays():
    nan = speechlike(1.0, 22050)
    nan[100] = np.nan
    return {  # waveform -> words the message must contain
        "zeros(100)": (np.zeros(100), "all silence"),
        "noise(100)": (np.random.default_rng(0).uniform(-0.5, 0.5, 100), "too short"),
        "empty": (np.zeros(0, np.float32), "empty"),
        "silent 2 s": (np.zeros(44100, np.float32), "all silence"),
        "0.2 s": (speechlike(0.2, 22050), "too short"),
        "NaN": (nan, "NaN"),
        "61 s": (speechlike(61.0, 8000).repeat(3), "too long"),
        "3-D": (np.zeros((2, 2, 22050)), "expected a 1-D waveform"),
        "a number": (0.5, "expected a 1-D waveform"),
        "None": (None, "expected a 1-D waveform"),
    }


@pytest.fixture(scope="module")
def converter(tiny_checkpoint):
    import vc
    return vc.load(tiny_checkpoint, vocoder="griffinlim", max_seconds=60)


@pytest.mark.parametrize("case", list(_arrays()))
def test_waveforms_get_the_checks_of_files(converter, wav_b, case):
    wav, words = _arrays()[case]
    for call in (lambda: converter.convert(wav, wav_b), lambda: converter.convert(wav_b, wav),
                 lambda: converter.swap(wav, wav_b), lambda: converter.speaker(wav)):
        with pytest.raises(AudioError) as e:
            call()
        assert words in str(e.value) and "\n" not in str(e.value) and "waveform" in str(e.value), str(e.value)


def test_good_waveforms_pass_unchanged(converter, wav_b):
    import torch
    from vc.audio import check_waveform
    wav = speechlike(1.0, 22050)
    assert check_waveform(wav) is not None and np.array_equal(check_waveform(wav), wav)
    assert np.array_equal(check_waveform(np.stack([wav, wav], 1)), wav)              # (T, channels)
    assert np.array_equal(check_waveform(torch.from_numpy(wav)), wav)
    out = converter.convert(wav.astype(np.float64), wav_b)
    assert abs(out.size - wav.size) <= 2 * 256
    with pytest.raises(ValueError, match="no target clip"):
        converter.convert(wav, [])
