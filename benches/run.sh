#!/usr/bin/env bash
# hoist's benchmark suite: builds hoist (release), builds the images once into a cache outside the
# repository, and times hoist against skopeo/umoci. See docs/benches.md.
#
#   benches/run.sh [--quick] [--only OP]... [--runs N] [--keep]
#
# Images are cached in ${HOIST_BENCH_CACHE:-$HOME/.cache/hoist-bench}; results go to stdout and to
# benches/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
HOIST_BENCH_T0=$(date +%s.%N)
export HOIST_BENCH_T0
echo "bench: cargo build --release -p hoist-oci-cli" >&2
cargo build --release --quiet -p hoist-oci-cli
exec python3 benches/bench.py --hoist target/release/hoist "$@"
