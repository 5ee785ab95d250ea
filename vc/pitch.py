"""The pitch contour of an utterance at the mel's frame rate, with the speaker's level removed.

Praat's autocorrelation pitch tracker (Boersma 1993, through the ``praat-parselmouth`` wheel:
no weights, ~600x real time on one CPU core) gives F0 every hop. Two rows per mel frame:

    row 0  log-F0 standardised over the utterance's voiced frames (0 where unvoiced):
           the melody, without the voice's own pitch level or range
    row 1  voicing, 1 or 0

A decoder that reads them (``ModelConfig.pitch_channels``) gets the source's melody and places
it in the target's range through the speaker vector: F0-conditioned conversion in the manner of
Qian et al. 2020 ("F0-consistent many-to-many non-parallel voice conversion"). Because the level
is removed, a frequency warp of the whole voice (vc.augment) leaves these features unchanged.

Shapes: wav (T,) float32 at ``cfg.sample_rate``  ->  (2, T // hop) float32, frame t centred on
sample (t + 0.5) * hop, as in vc.features.
"""
from __future__ import annotations

import numpy as np
import parselmouth

from .features import MelConfig

PITCH_CHANNELS = 2
F0_FLOOR, F0_CEILING = 60.0, 700.0   # Hz: low male voices to high children's voices
MAX_Z = 4.0                          # standardised log-F0 is clipped to +-MAX_Z (octave errors)


def pitch_features(wav, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """(T,) waveform -> (2, T // hop): standardised log-F0 and voicing per mel frame."""
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    frames = wav.shape[0] // cfg.hop_length
    out = np.zeros((PITCH_CHANNELS, frames), np.float32)
    if wav.shape[0] < 3 * cfg.sample_rate / F0_FLOOR or not np.any(wav):
        return out                                     # Praat needs three periods of the floor
    dt = cfg.hop_length / cfg.sample_rate
    track = parselmouth.Sound(wav, cfg.sample_rate).to_pitch_ac(
        time_step=dt, pitch_floor=F0_FLOOR, pitch_ceiling=F0_CEILING)
    f0 = track.selected_array["frequency"]             # Hz, 0 where unvoiced
    if f0.size == 0:
        return out
    times = (np.arange(frames) + 0.5) * dt             # each mel frame's centre
    nearest = np.clip(np.rint((times - track.xs()[0]) / dt).astype(int), 0, f0.size - 1)
    f0 = f0[nearest]
    voiced = f0 > 0
    if voiced.any():
        logf0 = np.log(f0[voiced])
        z = (logf0 - logf0.mean()) / max(logf0.std(), 0.05)   # 0.05: a monotone voice is not amplified
        out[0, voiced] = np.clip(z, -MAX_Z, MAX_Z)
        out[1, voiced] = 1.0
    return out
