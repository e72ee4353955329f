#!/usr/bin/env python3
"""Churn rounds on an updated index (issue 10's quality-under-churn test).

    scripts/churn.py rounds INDEX BASE.u8bin DEAD.ibin --rounds 5 --frac 0.05 --work DIR
        Starting from INDEX, whose ids 0..n-1 are the rows of BASE and whose
        deleted ids are DEAD.ibin, runs ROUNDS rounds of: delete a random
        FRAC of the live ids, re-insert their vectors (under new ids), and
        checkpoint, each through bin/spann-update. It writes DIR/src.bin
        (int32 per id: the BASE row it holds), DIR/dead.ibin (every id
        deleted), and per round DIR/round-R.log (spann-update's JSON).

    scripts/churn.py map WORK LIVE_IDS.bin RESULTS.ibin OUT.ibin
        Maps the ids of a search result on the churned index to positions
        in the live set file whose BASE rows are LIVE_IDS.bin (raw int32,
        ascending), so that `spann-search recall` can score it against that
        live set's ground truth. Every result must be a live vector.

Standard library only (no numpy on the benchmark machine).
"""
import argparse
import array
import json
import os
import random
import struct
import subprocess
import sys

UPDATE = os.path.join(os.path.dirname(__file__), "..", "bin", "spann-update")


def read_ibin(path):
    with open(path, "rb") as f:
        n, cols = struct.unpack("<II", f.read(8))
        ids = array.array("i")
        ids.frombytes(f.read(4 * n * cols))
    return n, cols, ids


def write_ibin(path, ids, cols=1):
    with open(path, "wb") as f:
        f.write(struct.pack("<II", len(ids) // cols, cols))
        f.write(array.array("i", ids).tobytes())


def rounds(a):
    with open(a.base, "rb") as f:
        n, dim = struct.unpack("<II", f.read(8))
        base = f.read()
    src = array.array("i", range(n))  # id -> base row
    _, _, dead_ids = read_ibin(a.dead)
    dead = set(dead_ids)
    rng = random.Random(a.seed)
    os.makedirs(a.work, exist_ok=True)
    for r in range(1, a.rounds + 1):
        live = [i for i in range(len(src)) if i not in dead]
        victims = sorted(rng.sample(live, int(len(live) * a.frac)))
        ins = os.path.join(a.work, "reinsert.u8bin")
        with open(ins, "wb") as f:
            f.write(struct.pack("<II", len(victims), dim))
            for i in victims:
                row = src[i]
                f.write(base[row * dim:(row + 1) * dim])
        delf = os.path.join(a.work, "delete.ibin")
        write_ibin(delf, victims)
        cmd = [UPDATE, "--index", a.index, "--insert", ins, "--delete", delf, "--checkpoint", "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        with open(os.path.join(a.work, f"round-{r}.log"), "w") as f:
            f.write(out)
        summary = json.loads(out)
        first = summary["first_inserted_id"]
        if first != len(src):
            sys.exit(f"round {r}: new ids start at {first}, expected {len(src)}")
        src.extend(src[i] for i in victims)
        dead.update(victims)
        print(f"round {r}: deleted {len(victims)}, re-inserted as {first}..{len(src) - 1}; "
              f"{summary.get('inserted_per_second', 0):.0f} inserts/s, checkpoint {summary.get('checkpoint_seconds', 0):.1f} s",
              flush=True)
    with open(os.path.join(a.work, "src.bin"), "wb") as f:
        f.write(src.tobytes())
    write_ibin(os.path.join(a.work, "dead.ibin"), sorted(dead))


def map_results(a):
    src = array.array("i")
    with open(os.path.join(a.work, "src.bin"), "rb") as f:
        src.frombytes(f.read())
    _, _, dead_ids = read_ibin(os.path.join(a.work, "dead.ibin"))
    dead = set(dead_ids)
    pos = array.array("i")
    with open(a.live_ids, "rb") as f:
        pos.frombytes(f.read())
    row_to_pos = {row: p for p, row in enumerate(pos)}
    nq, k, ids = read_ibin(a.results)
    out = array.array("i", [0]) * len(ids)
    for j, i in enumerate(ids):
        if i < 0:
            out[j] = -1
            continue
        if i in dead:
            sys.exit(f"result {j}: deleted id {i} returned")
        out[j] = row_to_pos[src[i]]
    write_ibin(a.out, out, k)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rounds")
    r.add_argument("index")
    r.add_argument("base")
    r.add_argument("dead")
    r.add_argument("--rounds", type=int, default=5)
    r.add_argument("--frac", type=float, default=0.05)
    r.add_argument("--seed", type=int, default=11)
    r.add_argument("--work", required=True)
    m = sub.add_parser("map")
    m.add_argument("work")
    m.add_argument("live_ids")
    m.add_argument("results")
    m.add_argument("out")
    a = p.parse_args()
    rounds(a) if a.cmd == "rounds" else map_results(a)


if __name__ == "__main__":
    main()
