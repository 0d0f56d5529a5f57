#!/bin/bash
# Full traces (every frame, the frame counts and the final state) of every scenario with
# seeds 1 and 7, and of swarm seeds 0..24 in both modes, one file each, from one
# `osmesh-sim` binary. Two binaries that keep the determinism contract give identical
# directories: `diff -r OLD NEW`.
#
# usage: sim/tools/traces.sh BINARY OUTDIR   (run from the repository root)
set -u  # a scenario may fail with another seed: its trace is kept all the same
bin=$1
out=$2
mkdir -p "$out"
for scenario in tests/scenarios/*.toml; do
  for seed in 1 7; do
    "$bin" run "$scenario" --seed "$seed" | sed -n '/^== trace/,$p' \
      > "$out/$(basename "$scenario" .toml)-$seed.txt"
  done
done
for seed in $(seq 0 24); do
  "$bin" replay --seed "$seed" --mode safety | sed -n '/^== trace/,$p' > "$out/swarm-safety-$seed.txt"
  "$bin" replay --seed "$seed" --mode liveness | sed -n '/^== trace/,$p' > "$out/swarm-live-$seed.txt"
done
