"""vc: one-shot voice conversion with a content/speaker disentangling autoencoder.

    import vc
    conv = vc.load()                          # installed default model + HiFi-GAN
    ab, ba = conv.swap("a.wav", "b.wav")      # a's words in b's voice, b's words in a's voice

Files, one per role: audio (I/O and checks), features (log-mel), model (the network),
vocoder (mel -> wave), checkpoint (files), convert (inference), data/augment/losses/train
(training), evaluate (figures), batch (many files), demo (web page; demo_live its Live tab, page
what both use), vctk (the corpus), cli.
"""
__version__ = "0.1.0"

from .audio import AudioError  # noqa: E402,F401
from .convert import Converter, NoModelError, load  # noqa: E402,F401
