#!/bin/bash
# Issue 16's fold validation in one GPU call: train the two fold parents side by side, then score the recipe
# variants on both folds with bench_folds.py. Run from the repository root on the GPU machine, with .gpu
# (pack_davis.py's output) carried. Environment: VARIANTS (bench_folds --variants), IT (parent steps, batch
# 8), SNAP (bench_folds --snap), END (seconds after which no new job starts), JOBS (parallel processes), SAVE_PARENTS=1 (write the
# parents to $OUT as float16 parts, each under the 16 MiB a returned file may have).
T0=$(date +%s); export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/fileseq*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD OSVOS_DAVIS_ROOT=/tmp/davis
python3 benchmarks/gpu/unpack_davis.py .gpu/davis /tmp/davis || exit 9
for f in a b; do
  python3 -m osvos_plugin.cli.train_parent --out /tmp/p$f --hold-out-fold $f --iterations "${IT:-2000}" \
    --batch-size 8 --learning-rate 1e-4 --shape-multiple 32 --device cuda --checkpoint-every 100000 \
    --progress none > "$OUT/parent-$f.log" 2>&1 &
done
wait
echo "parents done at $(( $(date +%s) - T0 )) s"; tail -n 2 "$OUT"/parent-*.log
if [ "${SAVE_PARENTS:-0}" = 1 ]; then
  python3 - <<'PY'
import os
from safetensors.torch import load_file, save_file
for f in "ab":
    s = {k: v.half() for k, v in load_file(f"/tmp/p{f}/parent.safetensors").items()}
    parts, size = [[]], 0  # float16 parts under the 16 MiB a returned file may have
    for k in sorted(s):
        n = s[k].numel() * 2
        if parts[-1] and size + n > 12 * 2**20:
            parts.append([])
            size = 0
        parts[-1].append(k)
        size += n
    for i, part in enumerate(parts):
        save_file({k: s[k] for k in part}, f"{os.environ['OUT']}/parent-{f}.part{i}.safetensors")
PY
fi
DL=$(( ${END:-470} - ( $(date +%s) - T0 ) ))
python3 benchmarks/bench_folds.py --parent a=/tmp/pa/parent.safetensors --parent b=/tmp/pb/parent.safetensors \
  --davis-root /tmp/davis --common device=cuda --variants "${VARIANTS:-base}" --snap "${SNAP:-}" --jobs "${JOBS:-8}" --threads 2 \
  --deadline-s "$DL" --jsonl "$OUT/folds.jsonl" > "$OUT/bench.log" 2>&1
grep -v '^20..-' "$OUT/bench.log"
echo "all done at $(( $(date +%s) - T0 )) s"
