#!/usr/bin/env bash
# Server throughput beside in-process SearchBatch, in one sitting,
# alternating run by run (docs/benchmarks.md, "The server").
#
#   scripts/bench-server.sh INDEX QUERIES GT [REPS=3] [OUT=out/bench-server]
#
# For nprobe 16 and 32, each repetition runs in-process SearchBatch (2
# threads) and then, against a spann-serve on 127.0.0.1:7079 started here,
# single-query requests at concurrency 1, 2, 4, 16, 64 and 32-query
# SearchBatch requests at concurrency 1, 2, 4, 16. Every run's JSON row
# goes to OUT/runs.jsonl; the medians are printed as a Markdown table.
set -euo pipefail
index=$1 queries=$2 gt=$3 reps=${4:-3} out=${5:-out/bench-server}
bin=${BIN:-bin}
mkdir -p "$out"
: > "$out/runs.jsonl"
"$bin/spann-serve" --index "sift=$index" --listen 127.0.0.1:7079 ${SERVE_FLAGS:-} 2> "$out/serve.log" &
serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null || true' EXIT
sleep 3
row() { # label, then spann-search flags
	local label=$1; shift
	"$bin/spann-search" --queries "$queries" --gt "$gt" --json "$@" |
		python3 -c "import json,sys; r=json.load(sys.stdin); r['label']='$label'; print(json.dumps(r))" >> "$out/runs.jsonl"
}
for rep in $(seq "$reps"); do
	for np in 16 32; do
		row "in-process,2 threads,nprobe $np" --index "$index" --nprobe $np --threads 2
		for c in 1 2 4 16 64; do
			row "server,single,c=$c,nprobe $np" --server http://127.0.0.1:7079 --nprobe $np --threads $c
		done
		for c in 1 2 4 16; do
			row "server,batch 32,c=$c,nprobe $np" --server http://127.0.0.1:7079 --nprobe $np --threads $c --server-batch 32
		done
	done
done
python3 - "$out/runs.jsonl" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r['label'], []).append(r)
print('| run | recall@10 | QPS (median) | vs in-process | p50 ms | p99 ms | pages/query |')
print('|---|---|---|---|---|---|---|')
for label, rs in by.items():
    np = label.split('nprobe ')[1]
    base = st.median(x['qps'] for x in by[f'in-process,2 threads,nprobe {np}'])
    q = st.median(x['qps'] for x in rs)
    print(f"| {label} | {rs[0]['recall_at_k']:.4f} | {q:.0f} | {q/base:.2f} | {st.median(x['latency_p50_us'] for x in rs)/1e3:.1f} | "
          f"{st.median(x['latency_p99_us'] for x in rs)/1e3:.1f} | {rs[0]['pages_per_query']:.1f} |")
PY
