#!/usr/bin/env bash
# kill-resume.sh [DATA_DIR] — issue 8's resume audit behind docs/benchmarks.md.
#
# Builds realsift-100k once without interruption, then, for each of the
# points below, starts the same build, has it SIGKILL itself there (the
# build's own SPANN_TEST_CRASH_AT hooks, internal/build/crash.go, so the
# kill lands exactly there, not after a guessed delay), runs it again with
# --resume, and compares every index file byte for byte, and the manifest's
# file list and build id, with the uninterrupted build's. A 96 MiB memory
# budget splits the assignment spill into several buckets, so that there
# are postings checkpoints to be killed between. Prints one line per point
# and exits non-zero at the first difference.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-data/realsift-100k}/base.u8bin
OUT=out/kill-resume
BIN=bin/spann-build
ID=5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e
FLAGS=(--base "$BASE" --threads 2 --quiet --build-id "$ID" --memory-budget 96MiB)
go build -o bin/ ./cmd/spann-build
rm -rf "$OUT" && mkdir -p "$OUT"
start=$(date +%s.%N)
"$BIN" "${FLAGS[@]}" --out "$OUT/ref" --json >"$OUT/ref.json"
full=$(echo "$(date +%s.%N) - $start" | bc)
B=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spill_buckets"])' "$OUT/ref.json")
echo "uninterrupted build: ${full} s, $B spill buckets"
# Checkpoint saves, counted from a build's start: 1 the start, 2 heads,
# 3 graph, 4..18 assignment (16 blocks of 6,250 rows), 19 assignment done,
# 20..18+B postings buckets, 19+B postings done, 20+B the phase's end,
# 21+B the manifest.
points=(
	"started" "after select heads" "checkpoint: saving#2" "checkpoint: saved#2"
	"after head graph" "checkpoint: saved#3" "assign: block#1" "spill: synced#2"
	"checkpoint: saving#6" "assign: half" "assign: block#10" "checkpoint: saved#14"
	"spill: synced#16" "checkpoint: saving#19" "postings: bucket#1" "postings: synced#2"
	"postings: half" "postings: bucket#$((B - 1))" "checkpoint: saving#$((19 + B))"
	"after assign and write postings" "checkpoint: saving#$((21 + B))" "manifest written" "committed"
	"checkpoint: saved#$((18 + B))"
)
same() { # dir: every file and the manifest's list equal the reference's
	for f in heads.bin graph.bin directory.bin postings.bin; do
		cmp -s "$OUT/ref/$f" "$1/$f" || { echo "$f differs"; return 1; }
	done
	python3 - "$OUT/ref" "$1" <<-'EOF'
		import json, sys, os
		a, b = (json.load(open(os.path.join(d, "manifest.json"))) for d in sys.argv[1:])
		assert a["files"] == b["files"] and a["build_id"] == b["build_id"], "manifests differ"
		assert sorted(os.listdir(sys.argv[2])) == sorted(os.listdir(sys.argv[1])), "other files in the index"
	EOF
}
n=0
for p in "${points[@]}"; do
	rm -rf "$OUT/idx"
	status=0
	# Inside braces whose stderr is /dev/null: bash's "Killed" notice goes
	# there.
	{ SPANN_TEST_CRASH_AT="$p" "$BIN" "${FLAGS[@]}" --out "$OUT/idx" >/dev/null 2>&1; } 2>/dev/null || status=$?
	if [ "$status" -ne 137 ]; then
		echo "the build was not killed at \"$p\" (exit $status)"
		exit 1
	fi
	start=$(date +%s.%N)
	after=$("$BIN" "${FLAGS[@]}" --out "$OUT/idx" --resume --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin).get("resumed_after", "(not resumed)"))')
	took=$(echo "$(date +%s.%N) - $start" | bc)
	same "$OUT/idx"
	n=$((n + 1))
	printf '%-34s resumed after: %-40s %6.1f s  identical\n' "$p" "$after" "$took"
done
echo "$n kill points, every resumed index byte for byte the uninterrupted one"
