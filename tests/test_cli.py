"""The `vc` command: end to end with a tiny model and both vocoders; bad input -> one line, exit 2."""
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from vc.cli import main
from test_audio import bad_files


def torch_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.parametrize("vocoder", ["hifigan", "griffinlim"])
def test_convert_end_to_end(tmp_path, tiny_checkpoint, wav_a, wav_b, vocoder, capsys):
    out = tmp_path / "out.wav"
    assert main(["convert", str(wav_a), str(wav_b), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--vocoder", vocoder]) == 0
    info = sf.info(str(out))
    assert info.samplerate == 22050 and abs(info.duration - 2.0) < 0.1   # the source's length
    assert "wrote" in capsys.readouterr().out


def test_swap_writes_both_directions(tmp_path, tiny_checkpoint, wav_a, wav_b):
    assert main(["swap", str(wav_a), str(wav_b), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
                 "--vocoder", "griffinlim"]) == 0
    ab, ba = tmp_path / "out" / "a_in_voice_of_b.wav", tmp_path / "out" / "b_in_voice_of_a.wav"
    assert abs(sf.info(str(ab)).duration - 2.0) < 0.1 and abs(sf.info(str(ba)).duration - 1.5) < 0.1


def test_every_bad_input_exits_2_with_one_line(tmp_path, tiny_checkpoint, wav_b, capsys):
    for name, words in bad_files(tmp_path).items():
        if name == "long.wav":
            continue  # the CLI limit is 30 min; covered below with real long files
        code = main(["convert", str(tmp_path / name), str(wav_b), "-o", str(tmp_path / "o.wav"),
                     "--model", str(tiny_checkpoint), "--vocoder", "griffinlim"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and name in err and words in err, err
    assert not (tmp_path / "o.wav").exists()


def test_too_long_input(tmp_path, tiny_checkpoint, wav_b, capsys):
    from conftest import write_wav
    long = write_wav(tmp_path / "long.wav", 61.0, 8000)
    assert main(["convert", str(long), str(wav_b), "-o", str(tmp_path / "o.wav"),
                 "--model", str(tiny_checkpoint), "--vocoder", "griffinlim", "--max-minutes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "too long: 61.0 s (the limit is 60 s)" in err and len(err.splitlines()) == 1, err


def test_default_limit_is_30_minutes(tmp_path, tiny_checkpoint, wav_b, capsys):
    import numpy as np
    long = tmp_path / "talk.flac"                 # 31 min of silence: a small file, refused by length first
    sf.write(str(long), np.zeros(31 * 60 * 8000, np.int16), 8000)
    assert main(["convert", str(long), str(wav_b), "-o", str(tmp_path / "o.wav"),
                 "--model", str(tiny_checkpoint), "--vocoder", "griffinlim"]) == 2
    err = capsys.readouterr().err.strip()
    assert "talk.flac: too long: 31.0 min (1860 s) (the limit is 30 min)" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("argv, words", [(["--max-minutes", "0"], "--max-minutes must be more than 0"),
                                         (["--precision", "fp16"], "invalid choice")])
def test_bad_conversion_options(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys, argv, words):
    try:
        code = main(["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "o.wav"),
                     "--model", str(tiny_checkpoint)] + argv)
    except SystemExit as e:                        # argparse's own refusal
        code = e.code
    assert code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_precision_option(tmp_path, tiny_checkpoint, wav_a, wav_b, precision):
    out = tmp_path / "out.wav"
    assert main(["convert", str(wav_a), str(wav_b), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--precision", precision]) == 0
    assert abs(sf.info(str(out)).duration - 2.0) < 0.1


def test_bad_model_file(tmp_path, wav_a, wav_b, capsys):
    (tmp_path / "m.pt").write_text("nope")
    assert main(["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "o.wav"), "--model",
                 str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "m.pt" in err and len(err.strip().splitlines()) == 1


def test_no_model_installed_is_said_clearly(tmp_path, wav_a, wav_b, capsys, monkeypatch):
    import vc.convert
    monkeypatch.setattr(vc.convert, "DEFAULT_MODEL", tmp_path / "absent.pt")
    assert main(["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "o.wav")]) == 2
    assert "no trained model is installed" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "vc", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "A's words in B's voice" in out.stdout
    for command in ("convert", "swap", "train", "export"):
        assert command in out.stdout


def _swap(tmp_path, ckpt, a, b, out):
    return main(["swap", str(a), str(b), "-o", str(out), "--model", str(ckpt), "--vocoder", "griffinlim"])


@pytest.mark.parametrize("layout", ["two folders", "same file twice"])
def test_swap_of_two_clips_with_one_name_writes_two_files(tmp_path, tiny_checkpoint, capsys, layout):
    from conftest import write_wav
    a = write_wav(tmp_path / "d1" / "utt.flac", 2.0, f0=110, seed=1)
    b = write_wav(tmp_path / "d2" / "utt.flac", 1.5, f0=220, seed=2) if layout == "two folders" else a
    assert _swap(tmp_path, tiny_checkpoint, a, b, tmp_path / "out") == 0
    wrote = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("wrote")]
    assert len(wrote) == 2 and len(set(wrote)) == 2, wrote
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["A_in_voice_of_B.wav", "B_in_voice_of_A.wav"]
    assert abs(sf.info(str(tmp_path / "out" / "A_in_voice_of_B.wav")).duration - 2.0) < 0.1
    if layout == "two folders":
        assert abs(sf.info(str(tmp_path / "out" / "B_in_voice_of_A.wav")).duration - 1.5) < 0.1


def test_swap_names():
    from vc.convert import swap_names
    assert swap_names("x/a.wav", "y/b.flac") == ("a_in_voice_of_b.wav", "b_in_voice_of_a.wav")
    assert swap_names("x/utt.wav", "y/Utt.flac") == ("A_in_voice_of_B.wav", "B_in_voice_of_A.wav")


@pytest.fixture
def no_conversion(monkeypatch):
    """Fail the test if a model is loaded or a conversion starts: refusals come first."""
    import vc
    import vc.convert

    def refuse(*a, **k):
        raise AssertionError("the command went on to load the model")
    monkeypatch.setattr(vc, "load", refuse)
    monkeypatch.setattr(vc.convert, "load", refuse)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


DEVICES = {"foo": "unknown device 'foo'", "cuda:99": "cuda:99", "meta": "cannot run vc"}
if not torch_cuda():
    DEVICES["cuda"] = "CUDA is not available"


def command_lines(tmp_path, ckpt, a, b, device):
    table = tmp_path / "pairs.tsv"
    table.write_text(f"source\ttarget\n{a}\t{b}\n")
    common = ["--model", str(ckpt), "--device", device]
    return {"convert": ["convert", str(a), str(b), "-o", str(tmp_path / "o" / "x.wav"), *common],
            "swap": ["swap", str(a), str(b), "-o", str(tmp_path / "o"), *common],
            "batch": ["batch", str(table), "-o", str(tmp_path / "o"), "--workers", "1", *common],
            "batch --dry-run": ["batch", str(table), "-o", str(tmp_path / "o"), "--dry-run", *common]}


@pytest.mark.parametrize("device", list(DEVICES))
def test_bad_device_is_one_line_before_any_work(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys,
                                                no_conversion, device):
    for name, argv in command_lines(tmp_path, tiny_checkpoint, wav_a, wav_b, device).items():
        assert main(argv) == 2, name
        _one_line_error(capsys, DEVICES[device])
        assert not (tmp_path / "o").exists(), name


@pytest.mark.parametrize("device", list(DEVICES))
def test_train_refuses_a_bad_device_before_training(tmp_path, capsys, monkeypatch, device):
    import vc.train

    def refuse(*a, **k):
        raise AssertionError("vc.train.main was called")
    monkeypatch.setattr(vc.train, "main", refuse)
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", device]) == 2
    _one_line_error(capsys, DEVICES[device])
    assert not (tmp_path / "run").exists()


def test_unwritable_outputs_are_refused_before_the_conversion(tmp_path, tiny_checkpoint, wav_a, wav_b,
                                                             capsys, no_conversion):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.wav").mkdir()
    model = ["--model", str(tiny_checkpoint)]
    cases = [
        (["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "adir.wav")], "is a folder"),
        (["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "o.mp3")], "unsupported format '.mp3'"),
        (["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "o")], "unsupported format"),
        (["convert", str(wav_a), str(wav_b), "-o", str(tmp_path / "afile" / "o.wav")], "is a file, not a folder"),
        (["convert", str(wav_a), str(wav_b), "-o", str(wav_a)], "it is an input"),
        (["swap", str(wav_a), str(wav_b), "-o", str(tmp_path / "afile")], "exists and is not a folder"),
        (["swap", str(wav_a), str(wav_b), "-o", str(tmp_path / "afile" / "out")], "is a file, not a folder"),
        (["batch", "--sources", str(tmp_path), "--target", str(wav_b), "-o", str(tmp_path / "afile" / "o")],
         "is a file, not a folder"),
    ]
    for argv, words in cases:
        assert main(argv + model) == 2, argv
        _one_line_error(capsys, words, argv[argv.index("-o") + 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "adir.wav", "afile", "b.wav"]


def test_export_checks_its_output_first(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    for out, words in ((tmp_path / "adir", "is a folder"), (tmp_path / "afile" / "m.pt", "is a file, not a folder"),
                       (tiny_checkpoint, "it is an input")):
        assert main(["export", str(tiny_checkpoint), "-o", str(out)]) == 2
        _one_line_error(capsys, words)
    assert main(["export", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.pt")]) == 2
    _one_line_error(capsys, "checkpoint not found")
    assert main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "new" / "m.pt")]) == 0


def test_export_averages_several_and_sets_the_strength(tmp_path, tiny_checkpoint, capsys):
    from vc.checkpoint import read_checkpoint
    first = tmp_path / "first.pt"
    assert main(["export", str(tiny_checkpoint), "-o", str(first)]) == 0
    out = tmp_path / "soup.pt"
    assert main(["export", str(tiny_checkpoint), str(first), "-o", str(out), "--strength", "1.25",
                 "--note", "two of one"]) == 0
    assert "average of 2 models" in capsys.readouterr().out
    meta = read_checkpoint(out)["meta"]
    assert meta["strength"] == 1.25 and meta["note"] == "two of one" and len(meta["average_of"]) == 2
    assert main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "s.pt"), "--strength", "9"]) == 2
    _one_line_error(capsys, "strength")


def test_export_raw_takes_the_weights_as_trained_not_their_average(tmp_path):
    from vc.checkpoint import read_checkpoint, save_checkpoint
    from vc.features import MelConfig
    from conftest import tiny_model
    trained, averaged = tiny_model(seed=1), tiny_model(seed=2)
    save_checkpoint(tmp_path / "ckpt.pt", trained, MelConfig(), train={"step": 9, "ema": averaged.state_dict()})
    for flags, model, kind in (([], averaged, "moving average"), (["--raw"], trained, None)):
        out = tmp_path / f"m{len(flags)}.pt"
        assert main(["export", str(tmp_path / "ckpt.pt"), "-o", str(out), *flags]) == 0
        state = read_checkpoint(out)
        assert state["meta"].get("weights") == kind and state["meta"]["step"] == 9
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in state["model"].items())


def test_convert_with_a_vocoder_weights_file(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys):
    from vc.vocoder import get_vocoder
    weights = tmp_path / "tuned.pt"
    torch.save(get_vocoder("hifigan").generator.state_dict(), weights)
    out = tmp_path / "out.wav"
    assert main(["convert", str(wav_a), str(wav_b), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--vocoder", str(weights)]) == 0
    assert sf.info(str(out)).samplerate == 22050
    assert main(["convert", str(wav_a), str(wav_b), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--vocoder", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.pt: no such vocoder weights file" in err[0]
