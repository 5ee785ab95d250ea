#!/usr/bin/env bash
# VCTK recipe: prepare -> split -> features -> train -> evaluate -> export.
#
#   recipes/vctk/run.sh --vctk CORPUS_ROOT --out WORK_DIR [--stage N] [--stop-stage M]
#                       [--mic mic1|mic2] [--config YAML] [--device cpu|cuda] [--ngpu N]
#                       [--workers N] [--heldout FILE] [--per-pair N] [--max-pairs N]
#                       [--vocoder hifigan|griffinlim]
#
# Stages (each can be re-run; 3 and 4 resume where they stopped):
#   1 prepare   WORK_DIR/manifest.tsv: every recording, transcript, speaker, gender, age, length
#   2 split     train / val / dev (held-out speakers: recipes/vctk/heldout_speakers.txt)
#   3 features  log-mel cache in WORK_DIR/exp/cache, parallel over CPU cores
#   4 train     WORK_DIR/exp (checkpoints, best.pt, TensorBoard); --ngpu N > 1 runs torchrun
#   5 evaluate  WORK_DIR/pairs.tsv (parallel sentences of dev speakers) -> WORK_DIR/eval
#   6 export    WORK_DIR/model.pt for `vc convert --model` and the web page
# All logic is in the vc package (vc/vctk.py, vc/vctk_cli.py, vc/train.py); this file only
# orders the steps. Set VC to the command that runs vc (default: `vc`, else `python -m vc`).
set -euo pipefail

recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
vctk="" out="" stage=1 stop_stage=6 mic=mic1 config="$recipe_dir/config.yaml" device=auto ngpu=1
workers=0 heldout="$recipe_dir/heldout_speakers.txt" per_pair=1 vocoder=hifigan max_pairs=""

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "run.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --vctk) vctk="${2:?}"; shift 2 ;;
    --out) out="${2:?}"; shift 2 ;;
    --stage) stage="${2:?}"; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage="${2:?}"; shift 2 ;;
    --mic) mic="${2:?}"; shift 2 ;;
    --config) config="${2:?}"; shift 2 ;;
    --device) device="${2:?}"; shift 2 ;;
    --ngpu) ngpu="${2:?}"; shift 2 ;;
    --workers) workers="${2:?}"; shift 2 ;;
    --heldout) heldout="${2:?}"; shift 2 ;;
    --per-pair) per_pair="${2:?}"; shift 2 ;;
    --vocoder) vocoder="${2:?}"; shift 2 ;;
    --max-pairs) max_pairs="${2:?}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
# every argument is checked before anything is created (a typo never leaves an empty WORK_DIR)
is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }
for opt in "stage:$stage" "stop-stage:$stop_stage" "ngpu:$ngpu" "workers:$workers" "per-pair:$per_pair" \
           ${max_pairs:+"max-pairs:$max_pairs"}; do
  is_count "${opt#*:}" || die "--${opt%%:*} must be a whole number, not '${opt#*:}'"
done
[ "$stage" -ge 1 ] && [ "$stop_stage" -le 6 ] && [ "$stage" -le "$stop_stage" ] \
  || die "stages run from 1 to 6 (--stage $stage --stop-stage $stop_stage)"
[ -n "$out" ] || die "--out WORK_DIR is required"
[ "$stage" -gt 1 ] || [ -n "$vctk" ] || die "--vctk CORPUS_ROOT is required for stage 1"
[ -f "$config" ] || die "$config: no such config"
[ -f "$heldout" ] || die "$heldout: no such file"
if [ -n "$vctk" ]; then
  [ -d "$vctk" ] || die "$vctk: no such folder"
fi
case "$mic" in mic1|mic2) ;; *) die "--mic must be mic1 or mic2, not '$mic'" ;; esac
case "$vocoder" in hifigan|griffinlim) ;; *) die "--vocoder must be hifigan or griffinlim, not '$vocoder'" ;; esac
[ ! -e "$out" ] || [ -d "$out" ] || die "$out: exists and is not a folder"

if [ -z "${VC:-}" ]; then
  if command -v vc >/dev/null 2>&1; then VC=vc; else VC="python -m vc"; fi
fi
PYTHON="${PYTHON:-python}"
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
config="$(abspath "$config")"
heldout="$(abspath "$heldout")"
if [ -n "$vctk" ]; then
  vctk="$(cd "$vctk" && pwd)"
fi
if [ "$device" != auto ]; then   # a bad --device fails now, in one line, not at stage 4
  $PYTHON - "$device" <<'PY' || exit 2
import sys
try:
    from vc.convert import DeviceError, check_device
except ImportError:          # this python lacks vc ($VC may still have it): stage 4 will tell
    sys.exit(0)
try:
    check_device(sys.argv[1])
except DeviceError as e:
    sys.exit(f"run.sh: error: {e}")
PY
fi
mkdir -p "$out" || die "$out: cannot create the folder"
out="$(cd "$out" && pwd)"
manifest="$out/manifest.tsv" exp="$out/exp"
if [ "$device" = auto ]; then
  device=$($PYTHON -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
fi

# the checkpoint to evaluate and export: best validation loss, else the newest
checkpoint() {
  if [ -f "$exp/best.pt" ]; then echo "$exp/best.pt"; return; fi
  local newest; newest=$(ls "$exp"/ckpt_*.pt 2>/dev/null | sort | tail -n 1 || true)
  [ -n "$newest" ] || die "no checkpoint in $exp: run stage 4 first"
  echo "$newest"
}

run_stage() {  # run_stage N NAME COMMAND...: runs it if N is in [stage, stop_stage], timed
  local n="$1" name="$2"; shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  echo "== stage $n: $name"
  local t0; t0=$(date +%s%N)
  "$@"
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '== stage %s: %s done in %d.%01d s\n' "$n" "$name" $((ms / 1000)) $((ms % 1000 / 100))
}

stage_prepare() { $VC vctk prepare "$vctk" -o "$manifest" --mic "$mic"; }
stage_split() { $VC vctk split "$manifest" --heldout "$heldout"; }
stage_features() { $VC vctk features "$manifest" --config "$config" --out "$exp" --workers "$workers"; }
stage_train() {
  local resume=()
  if ls "$exp"/ckpt_*.pt >/dev/null 2>&1; then resume=(--resume); fi
  local args=(train --config "$config" --data "$manifest" --out "$exp" --device "$device" "${resume[@]}")
  if [ "$ngpu" -gt 1 ]; then
    torchrun --standalone --nproc_per_node "$ngpu" -m vc "${args[@]}"
  else
    $VC "${args[@]}"
  fi
}
stage_evaluate() {
  local ckpt; ckpt="$(checkpoint)"
  $VC vctk pairs "$manifest" -o "$out/pairs.tsv" --per-pair "$per_pair"
  local limit=()
  if [ -n "$max_pairs" ]; then limit=(--max-pairs "$max_pairs"); fi
  $VC evaluate --model "$ckpt" --pairs "$out/pairs.tsv" --out "$out/eval" \
    --device "$device" --vocoder "$vocoder" "${limit[@]}"
}
stage_export() {
  local ckpt; ckpt="$(checkpoint)"
  $VC export "$ckpt" -o "$out/model.pt"
  echo "use it: vc convert SOURCE.wav TARGET.wav -o OUT.wav --model $out/model.pt"
}

cd "$out"   # relative paths in a config (cache_dir) resolve against WORK_DIR
run_stage 1 prepare stage_prepare
run_stage 2 split stage_split
run_stage 3 features stage_features
run_stage 4 train stage_train
run_stage 5 evaluate stage_evaluate
run_stage 6 export stage_export
