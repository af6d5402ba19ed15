#!/bin/bash
# Issue 20: cheaper fine-tuning (conv1-3 frozen; coarse to fine, the first half of the steps at 240) scored on
# the five held-out sequences with the held-out twin, on a lent GPU. Carry .gpu2 (pack_davis.py --layout
# heldout --no-hed) and .gpu3 (the twin as parent_parts.py parts, the fileseq wheel, site/OpenImageIO.py, an
# empty stand-in: scoring reads no image through it).
T0=$(date +%s); export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/.gpu3/site:$PWD OSVOS_DAVIS_ROOT=/tmp/davis OMP_NUM_THREADS=1
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu3/fileseq*.whl || exit 9
python3 benchmarks/gpu/unpack_davis.py .gpu2/davis /tmp/davis || exit 9
python3 benchmarks/gpu/parent_parts.py join /tmp/twin.safetensors .gpu3/twin.part*.safetensors || exit 9
mkdir -p /tmp/v
for s in bmx-bumps breakdance-flare car-turn kite-walk mallard-fly; do
  for v in base: f3:freeze_stages=3 c240:coarse_size=240 c240f3:coarse_size=240,freeze_stages=3; do
    timeout 220 python3 benchmarks/bench_quality.py --parent /tmp/twin.safetensors --sequences $s --budgets 300 \
      --finetune "${v#*:}" --json /tmp/v/${v%%:*}-$s.json > /tmp/v/${v%%:*}-$s.log 2>&1 &
  done
done
wait; tar czf $OUT/v.tgz -C /tmp v
python3 - <<'PY'
import glob, json
for v in ("base", "f3", "c240", "c240f3"):
    rows = [json.load(open(f))["rows"][0] for f in sorted(glob.glob(f"/tmp/v/{v}-*.json"))]
    j = sum(r["J"] for r in rows) / max(len(rows), 1); f = sum(r["F"] for r in rows) / max(len(rows), 1)
    print(v, len(rows), "J %.3f F %.3f JF %.3f" % (j, f, (j + f) / 2), " ".join("%s %.3f" % (r["sequence"][:5], (r["J"] + r["F"]) / 2) for r in rows))
PY
echo "done at $(( $(date +%s) - T0 )) s"
