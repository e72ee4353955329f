#!/usr/bin/env bash
# End-to-end demo on a generated data set: build the commands, generate a
# seeded synthetic base and queries, compute exact ground truth, and check the
# ground truth against a second computation with a different thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/demo}
N=${N:-200000}
mkdir -p bin "$OUT"
go build -o bin/ ./cmd/...
bin/spann-data generate --out "$OUT" --n "$N" --nq 1000 --dim 128 --type uint8 --seed 1
bin/spann-search groundtruth --base "$OUT/base.u8bin" --queries "$OUT/query.u8bin" --k 100 --out "$OUT/gt100.bin"
bin/spann-search groundtruth --base "$OUT/base.u8bin" --queries "$OUT/query.u8bin" --k 100 --threads 1 --compare "$OUT/gt100.bin"
