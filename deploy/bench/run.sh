#!/usr/bin/env bash
# The load benchmark in one command: installs wrk when missing, then builds the release binary
# and runs benches/load.rs (see its header for the scenarios) and benches/login_timing.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
cargo bench --bench load
cargo bench --bench login_timing
