#!/usr/bin/env python
"""How often did a finished run's validation end on tf.data's autotuning schedule? (issue #20)

Reads every history.csv under the given folders and, per epoch, the time beyond training
(epoch_time_s - train_time_s: the validation pass and the epoch's callbacks). With tf.data's
autotuning on, dropping the validation iterator waited for its autotuning thread's next wake-up,
10 ms x (2^k - 1) after the iterator started (... 1.27, 2.55, 5.11, 10.23, 20.47 s), so those
times pile up on the long wake-ups; keraszoo.data.without_autotuning removes the wait.

examples:
  python benchmarks/validation_waits.py docs/records
  python benchmarks/validation_waits.py runs/cifar10_full_budget --tolerance 0.03
  python benchmarks/validation_waits.py docs/records --shift 0.8      # control: times that mean nothing
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

WAKE_UPS = [0.01 * (2**k - 1) for k in range(1, 16)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders searched for history.csv files")
    parser.add_argument("--tolerance", type=float, default=0.06, help="seconds either side of a wake-up")
    parser.add_argument("--from", dest="shortest", type=float, default=2.0,
                        help="only wake-ups from this many seconds on: short ones are hit by chance")
    parser.add_argument("--shift", type=float, default=0.0,
                        help="move every wake-up by this many seconds: a control for how many land there by chance")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    epochs, hits = 0, {w + args.shift: 0 for w in WAKE_UPS if w >= args.shortest}
    files = sorted(p for folder in args.folders for p in folder.rglob("history.csv"))
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("epoch_time_s") or not row.get("train_time_s"):
                    continue
                epochs += 1
                beyond = float(row["epoch_time_s"]) - float(row["train_time_s"])
                for wake_up in hits:
                    hits[wake_up] += abs(beyond - wake_up) <= args.tolerance
    on = sum(hits.values())
    print(f"{len(files)} history files, {epochs} epochs with timings; {on} ended within "
          f"{1000 * args.tolerance:.0f} ms of an autotuning wake-up of {args.shortest:g} s or more"
          + (f", shifted by {args.shift:g} s:" if args.shift else ":"))
    for wake_up, count in hits.items():
        if count:
            print(f"  {wake_up:6.2f} s: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
