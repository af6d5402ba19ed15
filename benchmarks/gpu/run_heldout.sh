#!/bin/bash
# The held-out twin of the shipped parent, trained on a lent GPU, and the held-out measurements that need it
# (issues 17, 18, 19, 20), in two calls on one warm machine (the data of both does not fit one call's 64 MiB):
#   start  (carry .gpu: pack_davis.py --layout twin + the HED stand-in + fileseq): unpack, start the twin's
#          training in its own session (it outlives the call), report its first steps;
#   score  (carry .gpu2: pack_davis.py --layout heldout --no-hed, and .whl: fileseq, OpenImageIO, OpenColorIO):
#          wait for the twin, return it as float16 parts, run bench_loop, bench_edges and bench_objects on the
#          five held-out sequences side by side, then time whole renders alone (bench_render); results in
#          $OUT/results.tgz. END: the second of the call after which no new job starts and stragglers are stopped.
T0=$(date +%s); export PYTHONUNBUFFERED=1
export PYTHONPATH=/tmp/site:/tmp/kit/site:$PWD OSVOS_DAVIS_ROOT=/tmp/davis
case "$1" in
start)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/fileseq*.whl || exit 9
  mkdir -p /tmp/kit && cp -r .gpu/site /tmp/kit/ || exit 9
  python3 benchmarks/gpu/unpack_davis.py .gpu/davis /tmp/davis || exit 9
  setsid nohup python3 -m osvos_plugin.cli.train_parent --hold-out --out /tmp/twin --device cuda \
    --checkpoint-every 100000 --progress none > /tmp/twin.log 2>&1 < /dev/null &
  sleep "${WATCH:-40}"; cat /tmp/twin.log; tail -n 2 /tmp/twin/loss.csv
  ;;
score)
  END=${END:-420}; left() { echo $(( END - ( $(date +%s) - T0 ) )); }
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl || exit 9
  python3 benchmarks/gpu/unpack_davis.py .gpu2/davis /tmp/davis || exit 9
  mkdir -p /tmp/res
  while [ ! -f /tmp/twin/parent.safetensors ]; do
    [ "$(left)" -lt 200 ] && { echo "twin not done"; tail -n 3 /tmp/twin/loss.csv; cp /tmp/twin.log /tmp/res/; break; }
    sleep 5
  done
  P=/tmp/twin/parent.safetensors
  if [ -f $P ]; then
    echo "twin ready at $(( $(date +%s) - T0 )) s"; tail -n 4 /tmp/twin.log
    cp /tmp/twin.log /tmp/twin/loss.csv /tmp/res/
    python3 benchmarks/gpu/parent_parts.py split $P "$OUT/twin"
    H=bmx-bumps,breakdance-flare,car-turn,kite-walk,mallard-fly
    export OMP_NUM_THREADS=2
    for s in ${H//,/ }; do
      python3 benchmarks/bench_loop.py --parent $P --sequences $s --json /tmp/res/loop-$s.json > /tmp/res/loop-$s.log 2>&1 &
      python3 benchmarks/bench_edges.py --parent $P --sequences $s --json /tmp/res/edges-$s.json > /tmp/res/edges-$s.log 2>&1 &
    done
    i=0
    for pair in kite-walk+car-turn mallard-fly+breakdance-flare bmx-bumps+kite-walk car-turn+mallard-fly+kite-walk; do
      python3 benchmarks/bench_objects.py --parent $P --pairs $pair --stride 2 --json /tmp/res/objects-$i.json \
        > /tmp/res/objects-$i.log 2>&1 &
      i=$((i + 1))
    done
    while [ -n "$(jobs -r)" ] && [ "$(left)" -gt 75 ]; do sleep 5; done
    echo "benches done (or stopped) at $(( $(date +%s) - T0 )) s"; kill $(jobs -p) 2>/dev/null; wait
    unset OMP_NUM_THREADS
    timeout $(( $(left) + 60 )) python3 benchmarks/bench_render.py --device cuda --frames 100 --batch 16 --parent $P \
      --shot "/tmp/davis/JPEGImages/480p/car-turn/#####.jpg" /tmp/davis/Annotations/480p/car-turn/00000.png 0 \
      --json /tmp/res/render.json > /tmp/res/render.log 2>&1
    tail -n 8 /tmp/res/render.log
  fi
  tail -n 3 /tmp/res/*.log | grep -v '^$' | cut -c1-200 | tail -n 80
  tar czf "$OUT/results.tgz" -C /tmp res
  echo "all done at $(( $(date +%s) - T0 )) s"
  ;;
esac
