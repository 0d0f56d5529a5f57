#!/usr/bin/env python3
"""Mutation testing of the region's service methods (docs/TESTING.md, "Mutation testing").

cargo-mutants 27.1.0 runs only the mutated package's tests, and with `--test-package
osmesh-region` it lists no mutants at all, so the `RegionService::` methods of
`actors/src/region/*.rs`, whose tests are `region-bin/tests/domain.rs`, are measured by this
driver instead. For each mutant cargo-mutants lists (`--list --json`, which carries the diff):

1. apply its diff to the file (`patch FILE`: the diff's headers name the mutant, not a path);
2. build the tests (`cargo test --no-run`, `--build-timeout` seconds); a build failure is
   `unviable`;
3. run `osmesh-region`'s `domain` tests, then, if they pass, `osmesh-actors`' unit tests,
   each under `--timeout` seconds: a failing test is `caught`, all passing is `missed`, and a
   run that outlives the timeout is `timeout` (counted as not caught);
4. put the file back as it was (byte for byte, from a copy taken before).

Usage, from the workspace root (a worktree whose target/ already holds the build):

    CARGO_INCREMENTAL=0 nice -n 10 python3 contrib/mutants-service.py \\
        -f actors/src/region/license.rs -F 'RegionService::' -o mutants-license.jsonl

Each outcome is appended to the `-o` file as one JSON line (name, outcome, seconds), so an
interrupted run is resumed by running the same command again: mutants already in the file
are skipped. A summary (viable, caught, missed, timeouts, score) is printed at the end.
Do not edit the mutated file while this runs.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

PACKAGE = "osmesh-actors"
BUILD = [
    ["cargo", "test", "-p", "osmesh-region", "--test", "domain", "--no-run"],
    ["cargo", "test", "-p", "osmesh-actors", "--lib", "--no-run"],
]
TESTS = [
    ["cargo", "test", "-p", "osmesh-region", "--test", "domain"],
    ["cargo", "test", "-p", "osmesh-actors", "--lib"],
]


def list_mutants(path, include, exclude):
    out = subprocess.run(
        ["cargo", "mutants", "--list", "--json", "-p", PACKAGE, "-f", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mutants = json.loads(out)
    chosen = []
    for m in mutants:
        name = m.get("name") or describe(m)
        if include and not any(re.search(r, name) for r in include):
            continue
        if exclude and any(re.search(r, name) for r in exclude):
            continue
        m["name"] = name
        chosen.append(m)
    return chosen


def describe(m):
    span = m.get("span", {}).get("start", {})
    return f"{m.get('file')}:{span.get('line')}:{span.get('column')}: {m.get('description', '')}"


def run(cmd, timeout, log):
    """`ok`, `failed` or `timeout`; output goes to `log`."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        return "timeout"
    return "ok" if code == 0 else "failed"


def test_mutant(mutant, args, log):
    path = mutant["file"]
    with open(path, "rb") as f:
        original = f.read()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False) as d:
            d.write(mutant["diff"])
        applied = subprocess.run(
            ["patch", "--forward", "--quiet", path, "-i", d.name],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        os.unlink(d.name)
        if applied.returncode != 0:
            return "patch_failed"
        for cmd in BUILD:
            built = run(cmd, args.build_timeout, log)
            if built == "timeout":
                return "build_timeout"
            if built == "failed":
                return "unviable"
        for cmd in TESTS:
            got = run(cmd, args.timeout, log)
            if got == "timeout":
                return "timeout"
            if got == "failed":
                return "caught"
        return "missed"
    finally:
        with open(path, "wb") as f:
            f.write(original)
        for orig in [path + ".orig", path + ".rej"]:
            if os.path.exists(orig):
                os.unlink(orig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-f", "--file", required=True, help="the source file to mutate")
    p.add_argument("-F", "--re", action="append", default=[], help="only mutants whose name matches")
    p.add_argument("-E", "--exclude-re", action="append", default=[], help="skip mutants whose name matches")
    p.add_argument("-o", "--out", required=True, help="JSON lines of outcomes (appended; resumes)")
    p.add_argument("--timeout", type=int, default=300, help="seconds per test run")
    p.add_argument("--build-timeout", type=int, default=900, help="seconds per build")
    p.add_argument("--list", action="store_true", help="only list the chosen mutants")
    args = p.parse_args()

    mutants = list_mutants(args.file, args.re, args.exclude_re)
    if args.list:
        for m in mutants:
            print(m["name"])
        print(f"{len(mutants)} mutants", file=sys.stderr)
        return
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    done = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            for line in f:
                row = json.loads(line)
                done[row["name"]] = row["outcome"]
    log_path = args.out + ".log"
    with open(log_path, "a") as log:
        for i, m in enumerate(mutants, 1):
            if m["name"] in done:
                continue
            started = time.time()
            log.write(f"\n===== {m['name']}\n")
            outcome = test_mutant(m, args, log)
            seconds = round(time.time() - started)
            done[m["name"]] = outcome
            with open(args.out, "a") as out:
                out.write(json.dumps({"name": m["name"], "outcome": outcome, "seconds": seconds}) + "\n")
            print(f"[{i}/{len(mutants)}] {outcome:>8} {seconds:>4}s {m['name']}", flush=True)
    outcomes = [done[m["name"]] for m in mutants if m["name"] in done]
    count = {k: outcomes.count(k) for k in set(outcomes)}
    viable = sum(v for k, v in count.items() if k in ("caught", "missed", "timeout"))
    caught = count.get("caught", 0)
    score = f"{100 * caught / viable:.0f}%" if viable else "n/a"
    print(
        f"{args.file}: {len(outcomes)} run, viable {viable}, caught {caught}, "
        f"missed {count.get('missed', 0)}, timeouts {count.get('timeout', 0)}, "
        f"unviable {count.get('unviable', 0)}, other {len(outcomes) - viable - count.get('unviable', 0)}; "
        f"score {score}"
    )
    for m in mutants:
        if done.get(m["name"]) in ("missed", "timeout"):
            print(f"  {done[m['name']]}: {m['name']}")


if __name__ == "__main__":
    main()
