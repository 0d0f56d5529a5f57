#!/usr/bin/env python3
"""Runs README.md's commands exactly as written, as a newcomer would on a fresh clone.

The README's "## Run" section holds fenced `sh` blocks: the first is the command that starts
the demo; every line of the blocks after it is a CLI example. This script starts the demo in
the background (in its own process group), probes its API until the region answers and every
demo cluster is linked, runs each example verbatim through `bash -c` (each must exit 0), then
stops the demo with SIGINT, as Ctrl-C would, and checks that it stopped.

`--test-command` prints the command of the "## Test" section instead, for `.ci/run` to run.

Editing the README so that a command breaks fails CI: the commands run are read from the file,
never repeated here.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
API = "http://127.0.0.1:5240"
DEMO_CLUSTERS = 3
# A cold release build of the workspace took ~26 min on this 2-core machine under load.
DEMO_START_DEADLINE_S = 45 * 60
EXAMPLE_DEADLINE_S = 15 * 60
STOP_DEADLINE_S = 30


def sections(text):
    """Maps each `## Heading` to the list of fenced sh blocks under it (each a list of lines)."""
    out, heading, block = {}, None, None
    for line in text.splitlines():
        if block is not None:
            if line.strip().startswith("```"):
                out.setdefault(heading, []).append(block)
                block = None
            else:
                block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
        elif re.match(r"^```(sh|bash|console)?\s*$", line.strip()) and heading:
            block = []
    return out


def commands(block):
    """The runnable lines of a block: not blank, not comment-only. A line ending in `\\` joins
    the next, as the shell would."""
    out, pending = [], ""
    for line in block:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.strip().startswith("#"):
            out.append(line.strip())
    return out


def readme_commands():
    found = sections(open(README, encoding="utf-8").read())
    run_blocks = found.get("Run") or sys.exit("README.md has no fenced sh block under '## Run'")
    run = commands(run_blocks[0])
    if len(run) != 1:
        sys.exit(f"README.md's first Run block must hold one command, found {run}")
    examples = [c for b in run_blocks[1:] for c in commands(b)]
    test_blocks = found.get("Test") or sys.exit("README.md has no fenced sh block under '## Test'")
    test = commands(test_blocks[0])
    if len(test) != 1:
        sys.exit(f"README.md's first Test block must hold one command, found {test}")
    return run[0], examples, test[0]


def probe(path):
    """(status, parsed JSON or None); status 0 when nothing answers."""
    request = urllib.request.Request(API + path)
    token = os.environ.get("OSMESH_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None
    except (OSError, ValueError):
        return 0, None


def demo_ready():
    """The region answers and every demo cluster is linked. /readyz says the region is up; the
    cluster list (through the CLI, which finds the demo's token itself) says who is linked."""
    status, _ = probe("/readyz")
    if status == 404:  # a region without health routes: fall back to the API itself
        status, _ = probe("/api/v1/clusters")
    if status != 200 and status != 401:
        return False
    status, clusters = probe("/api/v1/clusters")
    if status == 200:
        linked = [c for c in clusters or [] if c.get("connected")]
        return len(linked) >= DEMO_CLUSTERS
    # The API wants a token: ask through the CLI binary the demo command built.
    cli = os.path.join(ROOT, "target", "release", "osmesh")
    result = subprocess.run(
        [cli, "clusters", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        return False
    clusters = json.loads(result.stdout or "[]")
    return len([c for c in clusters if c.get("connected")]) >= DEMO_CLUSTERS


def run_examples(demo_command, examples):
    log_path = os.path.join(ROOT, "target", "readme-demo.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "w")
    print(f"== README run command (background): {demo_command}", flush=True)
    demo = subprocess.Popen(
        ["bash", "-c", demo_command],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        last_report = started
        while not demo_ready():
            if demo.poll() is not None:
                sys.exit(f"the demo exited ({demo.returncode}) before its API answered; see {log_path}:\n"
                         + open(log_path).read()[-4000:])
            if time.monotonic() - started > DEMO_START_DEADLINE_S:
                sys.exit(f"the demo's API did not answer within {DEMO_START_DEADLINE_S} s; see {log_path}")
            if time.monotonic() - last_report > 60:
                print(f"   still waiting for the demo ({int(time.monotonic() - started)} s)", flush=True)
                last_report = time.monotonic()
            time.sleep(1)
        print(f"   demo answering after {time.monotonic() - started:.1f} s", flush=True)
        for number, command in enumerate(examples, 1):
            print(f"== README example {number}/{len(examples)}: {command}", flush=True)
            result = subprocess.run(["bash", "-c", command], cwd=ROOT, stdin=subprocess.DEVNULL,
                                    timeout=EXAMPLE_DEADLINE_S)
            if result.returncode != 0:
                sys.exit(f"README example failed with exit code {result.returncode}: {command}")
    finally:
        stop(demo, log_path)


def stop(demo, log_path):
    if demo.poll() is not None:
        return
    os.killpg(demo.pid, signal.SIGINT)
    try:
        demo.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()
        sys.exit(f"the demo did not stop within {STOP_DEADLINE_S} s of SIGINT; see {log_path}")
    print(f"== demo stopped (exit {demo.returncode})", flush=True)


def main():
    demo_command, examples, test_command = readme_commands()
    if sys.argv[1:] == ["--test-command"]:
        print(test_command)
        return
    if not examples:
        sys.exit("README.md's Run section lists no CLI examples")
    run_examples(demo_command, examples)
    print(f"README: the run command and {len(examples)} examples ran as written", flush=True)


if __name__ == "__main__":
    main()
