#!/usr/bin/env bash
# End to end on a generated data set: build the commands, generate a seeded
# synthetic base and queries, compute their exact ground truth, build an
# index, then search it and report recall@10, QPS, latency and bytes read for
# a few settings.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/demo}
N=${N:-200000}
THREADS=${THREADS:-0}
mkdir -p bin "$OUT"
go build -o bin/ ./cmd/...
bin/spann-data generate --out "$OUT" --n "$N" --nq 1000 --dim 128 --type uint8 --seed 1
bin/spann-search groundtruth --base "$OUT/base.u8bin" --queries "$OUT/query.u8bin" --k 100 --out "$OUT/gt100.bin" --threads "$THREADS"
bin/spann-build --base "$OUT/base.u8bin" --out "$OUT/index" --force --threads "$THREADS"
bin/spann-search --index "$OUT/index" --queries "$OUT/query.u8bin" --gt "$OUT/gt100.bin" --k 10 --sweep nprobe=4,8,16,32,64
