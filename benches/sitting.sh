#!/bin/bash
# One benchmark sitting, as BENCHMARKS.md reports them: ROUNDS interleaved rounds of the
# reference, the preview on one core and two (200,000 and 20,000 events), an earlier build of the
# preview if BEFORE names one, two one-core previews side by side (what two independent cores
# give on this machine), and the criterion rows for typed inputs and encode_all, and the
# dispatcher's rows for the three forms of one event (unless NOCRIT).
#
#   bash benches/sitting.sh            # ROUNDS=5 BEFORE=path/to/older/preview NOCRIT=1 to vary
#
# Needs the inputs of BENCHMARKS.md's commands (/tmp/ev200k.ndjson, /tmp/ev20k.ndjson,
# /tmp/hash-all.json) and the reference installed by ../shared/bench/peer/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DATA=${DATA:-/tmp}
cargo build --release --example preview >/dev/null 2>&1
cp target/release/examples/preview "$DATA/preview-sitting"
if [ -z "${NOCRIT:-}" ]; then
  cargo bench --bench pipeline --bench dispatcher --no-run >/dev/null 2>&1
  BENCH=$(ls -t target/release/deps/pipeline-* | grep -v '\.d$' | head -1)
  DISPATCH=$(ls -t target/release/deps/dispatcher-* | grep -v '\.d$' | head -1)
fi
PEER=../shared/bench/peer/throughput.js
preview() { # binary, then the preview's arguments
  local exe=$1; shift
  /usr/bin/time -f "maxrss %M KB" "$exe" --quiet --batch 100 --mapping "$DATA/hash-all.json" "$@" 2>&1 |
    grep -o "[0-9]* events/s\|maxrss.*" | tr '\n' ' '
  echo
}
lscpu | grep -E 'Model name|CPU family|Model:' || true
for r in $(seq 1 "$ROUNDS"); do
  echo "=== round $r $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  node "$PEER" "$DATA/ev200k.ndjson" 20000 2>&1 | grep -o "= [0-9]* events/s" | sed 's/^/reference /'
  for i in 1 2; do echo -n "t1-200k "; preview "$DATA/preview-sitting" "$DATA/ev200k.ndjson"; done
  echo -n "t1-20k "; preview "$DATA/preview-sitting" "$DATA/ev20k.ndjson"
  for i in 1 2; do echo -n "t2-200k "; preview "$DATA/preview-sitting" --threads 2 "$DATA/ev200k.ndjson"; done
  echo -n "t2-20k "; preview "$DATA/preview-sitting" --threads 2 "$DATA/ev20k.ndjson"
  if [ -n "${BEFORE:-}" ]; then
    echo -n "t1-before-200k "; preview "$BEFORE" "$DATA/ev200k.ndjson"
    echo -n "t2-before-200k "; preview "$BEFORE" --threads 2 "$DATA/ev200k.ndjson"
  fi
  echo -n "side-by-side "
  { preview "$DATA/preview-sitting" "$DATA/ev200k.ndjson" & preview "$DATA/preview-sitting" "$DATA/ev200k.ndjson"; wait; } | tr '\n' ' '
  echo
  if [ -z "${NOCRIT:-}" ]; then
    "$BENCH" --bench --noplot --warm-up-time 1 --measurement-time 4 \
      'typed_fresh|end_to_end/encode \(|end_to_end/encode, s|encode_all' 2>&1 |
      grep -E "^(end_to_end|typed)|^ +time:" | grep -v '%' | paste - - | sed 's/  */ /g; s/^/crit /'
    "$DISPATCH" --bench --noplot 2>&1 |
      grep -E "^dispatcher|^ +time:" | grep -v '%' | paste - - | sed 's/  */ /g; s/^/crit /'
  fi
done
