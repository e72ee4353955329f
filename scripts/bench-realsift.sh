#!/usr/bin/env bash
# bench-realsift.sh [DATASET]  (realsift-1M by default; needs data/, see README)
#
# The benchmark behind docs/benchmarks.md: build the index with 2 threads
# (timed, JSON summary), then sweep the number of postings read with 1 and
# 2 search threads, and compare io_uring with pread at two settings. Writes
# everything to out/bench-DATASET/. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DS=${1:-realsift-1M}
DATA=${SPANN_DATA:-data}/$DS
OUT=out/bench-$DS
SWEEP=${SWEEP:-nprobe=8,12,16,24,32,48,64}
mkdir -p bin "$OUT"
go build -o bin/ ./cmd/...
nproc >"$OUT/machine.txt"
grep -m1 'model name' /proc/cpuinfo >>"$OUT/machine.txt"
date -u >>"$OUT/machine.txt"

/usr/bin/time -v bin/spann-build --base "$DATA/base.u8bin" --out "$OUT/index" --threads 2 --force --json \
	>"$OUT/build.json" 2>"$OUT/build.time"
grep -E 'Elapsed|Maximum resident' "$OUT/build.time"

for t in 1 2; do
	bin/spann-search --index "$OUT/index" --queries "$DATA/query.u8bin" --gt "$DATA/gt100.bin" --k 10 \
		--threads $t --sweep "$SWEEP" --sweep-out "$OUT/sweep-t$t.csv" --plot "$OUT/sweep-t$t.png" | tee "$OUT/sweep-t$t.txt"
done

# io_uring against pread, alternating, same settings.
for np in 16 32; do
	for round in 1 2; do
		for io in uring pread; do
			echo "nprobe $np, $io, round $round"
			bin/spann-search --index "$OUT/index" --queries "$DATA/query.u8bin" --gt "$DATA/gt100.bin" --k 10 \
				--threads 1 --nprobe $np --io $io --json >"$OUT/io-np$np-$io-$round.json"
			grep -E '"qps"|latency_mean_us|latency_p99_us' "$OUT/io-np$np-$io-$round.json" | tr -d '\n '
			echo
		done
	done
done
