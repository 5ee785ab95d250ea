"""How good does it sound? DNSMOS (no reference needed) and mel-cepstral distortion (with one).

DNSMOS P.835 (Reddy et al. 2022) through the ONNX models inside the ``speechmos`` wheel. As in
Microsoft's script, a clip shorter than the 9.01 s input window is repeated to fill it; here it is
then cut to one window (the script would average shifted copies of the same repeated audio).
Longer clips are scored on 9.01 s windows every second and averaged, as in the script.

MCD: 24 mel-cepstral coefficients c1..c24 of the 80-band natural-log mel amplitude of vc.features
(a DCT-II scaled so that a log spectrum c0 + sum_m c_m cos(pi m (k + 1/2) / 80) gives back c_m,
the convention of SPTK's mel-cepstrum; c0, the energy, left out), frames aligned by DTW, in dB
with the usual constant 10 / ln 10 * sqrt(2 * sum of squared differences). The frequency warping
(Slaney mel bands, not an all-pass filter) differs from SPTK's, so compare systems within this
tool rather than with numbers from other toolkits.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000
WINDOW = 9.01
_dnsmos = None


def _dnsmos_model():
    """speechmos's DNSMOS, its ONNX sessions made with the process's thread budget."""
    global _dnsmos
    if _dnsmos is None:
        try:
            import onnxruntime as ort
            from speechmos.dnsmos import DNSMOS
        except ImportError as e:
            raise RuntimeError(f"DNSMOS needs speechmos and onnxruntime ({e}): "
                               "pip install speechmos onnxruntime") from None
        folder = Path(list(importlib.util.find_spec("speechmos").submodule_search_locations)[0])
        primary, p808 = folder / "dnsmos_models" / "sig_bak_ovr.onnx", folder / "dnsmos_models" / "model_v8.onnx"
        model = DNSMOS(str(primary), str(p808))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = torch.get_num_threads(), 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")   # busy machines
        model.onnx_sess = ort.InferenceSession(str(primary), opts, providers=["CPUExecutionProvider"])
        model.p808_onnx_sess = ort.InferenceSession(str(p808), opts, providers=["CPUExecutionProvider"])
        _dnsmos = model
    return _dnsmos


def dnsmos(wav: np.ndarray) -> dict:
    """(T,) float32 at 16 kHz -> {'ovrl', 'sig', 'bak'} (MOS scale 1..5)."""
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    n = int(WINDOW * SAMPLE_RATE)
    if wav.size < n:
        wav = np.tile(wav, -(-n // wav.size))[:n]
    out = _dnsmos_model()(wav, SAMPLE_RATE, False)
    return {"ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]), "bak": float(out["bak_mos"])}


def mel_cepstrum(mel: torch.Tensor, n_coeffs: int = 24) -> np.ndarray:
    """(n_mels, frames) natural-log mel -> (n_coeffs, frames), c1..c_n."""
    from scipy.fft import dct
    m = mel.detach().cpu().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel)
    return dct(m.astype(np.float64), type=2, axis=0)[1:n_coeffs + 1] / m.shape[0]


def mcd(wav: np.ndarray, reference: np.ndarray, sample_rate: int = 22050) -> float:
    """Mel-cepstral distortion (dB) of ``wav`` to ``reference`` (both 1-D at ``sample_rate``),
    DTW-aligned."""
    import librosa

    from ..features import MelConfig, mel_spectrogram
    cfg = MelConfig(sample_rate=sample_rate)
    a = mel_cepstrum(mel_spectrogram(np.asarray(wav, dtype=np.float32), cfg))
    b = mel_cepstrum(mel_spectrogram(np.asarray(reference, dtype=np.float32), cfg))
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    diff = a[:, path[:, 0]] - b[:, path[:, 1]]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff ** 2, axis=0))))
