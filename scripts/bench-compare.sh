#!/usr/bin/env bash
# bench-compare.sh OLD_BIN OLD_INDEX NEW_BIN NEW_INDEX [ROUNDS]
#
# Side-by-side search benchmark behind docs/benchmarks.md: the previous
# main's spann-search (OLD_BIN, built from a `git worktree`) on the index its
# spann-build made (OLD_INDEX) against this tree's (NEW_BIN, NEW_INDEX) on
# realsift-1M, alternating runs, caches
# dropped before each, ROUNDS (default 3) rounds, 1 and 2 threads. Each run
# is a sweep; the CSVs land in out/cmp/. Needs root for drop_caches (it is
# skipped otherwise) and an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 OLD_INDEX=$2 NEW=$3 NEW_INDEX=$4 ROUNDS=${5:-3}
DATA=${SPANN_DATA:-data}/realsift-1M
OUT=${CMP_OUT:-out/cmp}
mkdir -p "$OUT"
{ nproc; grep -m1 'model name' /proc/cpuinfo; date -u; } >"$OUT/machine.txt"
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
run() { # name bin index args...
	local name=$1 bin=$2 index=$3
	shift 3
	drop
	"$bin" --index "$index" --queries "$DATA/query.u8bin" --gt "$DATA/gt100.bin" --k 10 "$@" --sweep-out "$OUT/$name.csv" >/dev/null
	echo "$name done"
}
for r in $(seq 1 "$ROUNDS"); do
	for t in 1 2; do
		run "old-t$t-r$r" "$OLD" "$OLD_INDEX" --threads $t --sweep nprobe=12,16,20,24,28,32,40
		run "fixed-t$t-r$r" "$NEW" "$NEW_INDEX" --threads $t --sweep nprobe=12,16,20,24,28,32,40
		run "two-t$t-r$r" "$NEW" "$NEW_INDEX" --threads $t --nprobe 40 --head-list 40 --first-round 6 \
			--sweep kth-slack=0.12,0.16,0.2,0.25,0.3,0.35,0.4,0.5
		run "single-t$t-r$r" "$NEW" "$NEW_INDEX" --threads $t --nprobe 16 --sweep in-flight=1
	done
done
