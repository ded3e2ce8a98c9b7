#!/usr/bin/env python3
"""Runs several training configurations side by side on one GPU and keeps the one with the best validation
perplexity (valid.ids; the held-out text plays no part in the choice).

The Brown corpus is small (about 1.6M training tokens), so the question is how many passes and how much
dropout a ~23M-parameter ternary model wants before it overfits; one GPU has room for a few such models at
once, so the sweep trains them in parallel for the same wall-clock budget.

Each run writes its dump into WORK/<run>; the winner's manifest.json, weights.bin and train_report.json are
copied to --out together with every run's log and a sweep.json summary (at most 8 files, as the device run's
return folder allows).

Usage: run_sweep.py --out "$OUT" --minutes 7 [--data training/work]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

# name -> extra arguments for train.py (all share the model shape and the schedule's form).
RUNS = {
    "a-drop0.1-ep8": ["--dropout", "0.1", "--epochs", "8"],
    "b-drop0.2-ep20": ["--dropout", "0.2", "--epochs", "20"],
    "c-drop0.3-ep40": ["--dropout", "0.3", "--epochs", "40"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default="training/work")
    ap.add_argument("--work", default="/tmp/bitnet-sweep")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--name", default="bitnet-brown")
    ap.add_argument("extra", nargs="*", help="more train.py arguments for every run (after --)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))

    procs = {}
    start = time.time()
    for name, extra in RUNS.items():
        log = open(os.path.join(args.out, f"{name}.log"), "w")
        cmd = [sys.executable, os.path.join(here, "train.py"), "--data", args.data, "--out",
               os.path.join(args.work, name), "--name", args.name, "--minutes", str(args.minutes),
               "--seed", "1"] + extra + args.extra
        log.write(" ".join(cmd) + "\n")
        log.flush()
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1")), log)
    for name, (p, log) in procs.items():
        p.wait()
        log.close()
        print(f"{name}: exit {p.returncode} after {time.time() - start:.0f} s", flush=True)

    summary = {}
    for name in RUNS:
        path = os.path.join(args.work, name, "train_report.json")
        if os.path.exists(path):
            with open(path) as f:
                r = json.load(f)
            summary[name] = {k: r[k] for k in ["valid_ppl", "heldout_ppl", "epochs", "tokens_seen", "steps",
                                               "train_minutes", "final_train_loss", "best", "parameters"]}
        else:
            summary[name] = {"error": "no report (see the log)"}
    done = [n for n in RUNS if "valid_ppl" in summary[n]]
    if not done:
        print("no run finished", flush=True)
        sys.exit(1)
    best = min(done, key=lambda n: summary[n]["valid_ppl"])
    for n in RUNS:
        print(f"{n}: {json.dumps(summary[n])}", flush=True)
    print(f"chosen by validation perplexity: {best}", flush=True)
    with open(os.path.join(args.out, "sweep.json"), "w") as f:
        json.dump({"chosen": best, "runs": summary, "run_args": RUNS}, f, indent=1)
    for fname in ["manifest.json", "weights.bin", "train_report.json"]:
        shutil.copy(os.path.join(args.work, best, fname), os.path.join(args.out, fname))


if __name__ == "__main__":
    main()
