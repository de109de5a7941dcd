#!/usr/bin/env bash
# Distributed evaluation on this machine (docs/distributed.md):
#  1. a small MNIST adaptive evaluation (PGD-10 with EOT 4 through the VAE, 200 images in 16 cells)
#     in one process with 2 threads, on 1 worker x 2 threads, and on 2 workers x 1 thread;
#  2. the coordinator's overhead per cell on many tiny cells (1 image each): wall time against the
#     same cells in one process, and the coordinator's own CPU time per cell.
# Needs redis-server and the checkpoints of `node bin/vaeguard.js reproduce mnist --quick`.
# Starts its own redis-server on a free loopback port and stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
CLF=${CLF:-runs/checkpoints/mnist-classifier-quick.safetensors}
VAE=${VAE:-runs/checkpoints/mnist-vae-b0.01-bce-quick.safetensors}
SAMPLES=${SAMPLES:-200}
TINY=${TINY:-300}
for f in "$CLF" "$VAE"; do
  [[ -f $f ]] || { echo "queue-scaling: $f is missing: run node bin/vaeguard.js reproduce mnist --quick" >&2; exit 2; }
done

tmp=$(mktemp -d)
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
redis=$!
workers=()
stop_workers() {
  for p in "${workers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${workers[@]}"; do wait "$p" 2>/dev/null || true; done
  workers=()
}
cur=""
cleanup() {
  if [[ -n $cur ]]; then
    pkill -TERM -P "$cur" 2>/dev/null || true
    kill "$cur" 2>/dev/null || true
  fi
  stop_workers
  kill "$redis" 2>/dev/null || true
  wait "$redis" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
url=redis://127.0.0.1:$port
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

start_workers() { # count threads
  for ((i = 0; i < $1; i++)); do
    node bin/vaeguard.js worker --queue "$url/$db" --threads "$2" 2>>"$tmp/workers.log" &
    workers+=($!)
  done
}
# Run a command; its wall seconds, user and system CPU seconds go to $tmp/time.
timed() {
  /usr/bin/time -f "%e %U %S" -o "$tmp/time" "$@" &
  cur=$!
  wait "$cur"
  cur=""
}
# Largest difference between two runs' rows (accuracies and rel-L2), from their --json outputs.
rowdiff() {
  node -e '
const [a, b] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")).rows);
let d = 0;
a.forEach((r, i) => {
  d = Math.max(d, Math.abs(r.relL2 - b[i].relL2));
  for (const k of Object.keys(r.accuracy)) d = Math.max(d, Math.abs(r.accuracy[k] - b[i].accuracy[k]));
});
console.log(d === 0 ? "identical" : `largest difference ${d.toPrecision(3)}`);' "$1" "$2"
}

ADAPTIVE=(--classifier "$CLF" --vae "$VAE" --samples "$SAMPLES" --shard-size 25 --batch-size 25
  --attacks pgd:steps=10 --eps 0.1 --defenses none,vae --eot 4 --passes 2 --mode adaptive --json)
echo "adaptive evaluation: $SAMPLES images, PGD-10, EOT 4, no defense and VAE, cells of 25 images"
VAEGUARD_THREADS=2 timed node bin/vaeguard.js evaluate "${ADAPTIVE[@]}" --out "$tmp/one" >"$tmp/one.json"
read -r wall _ <"$tmp/time"
echo "  one process, 2 threads:     $wall s"
db=1
start_workers 1 2
timed node bin/vaeguard.js evaluate "${ADAPTIVE[@]}" --out "$tmp/w1t2" --queue "$url/$db" >"$tmp/w1t2.json"
read -r wall _ <"$tmp/time"
stop_workers
echo "  1 worker x 2 threads:       $wall s"
db=2
start_workers 2 1
timed node bin/vaeguard.js evaluate "${ADAPTIVE[@]}" --out "$tmp/w2t1" --queue "$url/$db" >"$tmp/w2t1.json"
read -r wall _ <"$tmp/time"
stop_workers
echo "  2 workers x 1 thread:       $wall s"
# Same thread count per cell: the same results file. Another thread count changes the rounding of
# libtorch's parallel reductions, so a borderline image may flip.
cmp -s "$tmp/one/sweep-adaptive.json" "$tmp/w1t2/sweep-adaptive.json" && s=identical || s=DIFFERENT
echo "  results file of 1 worker x 2 threads against one process with 2 threads: $s"
echo "  rows of 2 workers x 1 thread against 2 threads: $(rowdiff "$tmp/one.json" "$tmp/w2t1.json")"

CELLS=(--classifier "$CLF" --samples "$TINY" --shard-size 1 --batch-size 1 --attacks fgsm --eps 0,0.1
  --defenses none --mode gray-box --json)
echo "tiny cells: $((2 * TINY)) cells of 1 image (FGSM, no defense), 1 thread everywhere"
VAEGUARD_THREADS=1 timed node bin/vaeguard.js evaluate "${CELLS[@]}" --out "$tmp/tiny-one" >/dev/null
read -r wall_one _ <"$tmp/time"
echo "  one process:                $wall_one s"
db=3
start_workers 1 1
VAEGUARD_THREADS=1 timed node bin/vaeguard.js evaluate "${CELLS[@]}" --out "$tmp/tiny-q" --queue "$url/$db" >/dev/null
read -r wall_q user_q sys_q <"$tmp/time"
# The same command again: every cell is in the results file, so this is the coordinator without cells.
VAEGUARD_THREADS=1 timed node bin/vaeguard.js evaluate "${CELLS[@]}" --out "$tmp/tiny-q" --queue "$url/$db" >/dev/null
read -r _ user_0 sys_0 <"$tmp/time"
stop_workers
echo "  1 worker x 1 thread:        $wall_q s (coordinator CPU $user_q s user + $sys_q s system)"
echo "  coordinator with no cell:   CPU $user_0 s user + $sys_0 s system"
node -e "
const n = 2 * $TINY;
console.log('  wall overhead per cell:     ' + ((($wall_q) - ($wall_one)) / n * 1000).toFixed(1) + ' ms');
console.log('  coordinator CPU per cell:   ' + ((($user_q + $sys_q) - ($user_0 + $sys_0)) / n * 1000).toFixed(2) + ' ms');
"
cmp -s "$tmp/tiny-one/sweep-gray-box.json" "$tmp/tiny-q/sweep-gray-box.json" && echo "  results files identical"
