#!/usr/bin/env bash
# flip-bytes.sh — the byte-flip audit of issue 8 (docs/benchmarks.md):
# builds an index of realsift-100k with this tree's spann-build (or uses
# INDEX if given), then flips one bit at a time across its files and
# counts, per file, damage refused at Open, reported by a search, harmless,
# or silently wrong / a panic (which fail the run). See TestByteFlips in
# flip_test.go for which bytes are flipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SPANN_DATA:-data}/realsift-100k
INDEX=${INDEX:-out/flip100k}
if [ ! -f "$INDEX/manifest.json" ]; then
	go build -o bin/ ./cmd/spann-build
	bin/spann-build --base "$DATA/base.u8bin" --out "$INDEX" --force --threads 2 --quiet
fi
SPANN_FLIP_INDEX=$PWD/$INDEX SPANN_FLIP_QUERIES=$PWD/$DATA/query.u8bin \
	go test -count=1 -run '^TestByteFlips$' -v -timeout 2h . | grep -E '^\s+flip_test.go:[0-9]+: \||FAIL|ok|WRONG|PANIC|panic'
