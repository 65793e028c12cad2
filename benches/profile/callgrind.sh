#!/usr/bin/env bash
# Instructions per whoami request: our server against the poem-openapi baseline of the load
# benchmark (benches/load.rs), each under callgrind. Instruction counts are reproducible on a
# shared, noisy machine where wall-clock figures are not; they leave out the kernel (system
# calls, the log file's page cache) and contention between cores.
#
#   1. A work dir of the load benchmark (config, tenants, whoami's body):
#        VIGIA_BENCH_ONLY=hot VIGIA_BENCH_KEEP=1 cargo bench --bench load
#   2. A build with line tables, in a target dir of its own (the normal one stays as it is):
#        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#          cargo bench --bench load --no-run --target-dir target-prof
#   3. bash benches/profile/callgrind.sh WORK_DIR target-prof [REQUESTS] [OUT_DIR]
#
# Each server is started under callgrind, sent 2,000 whoami requests to warm up, its counters
# zeroed, sent REQUESTS more (default 50,000, over 8 keep-alive connections), and dumped. The
# dumps are OUT_DIR/{whoami,openapi}/callgrind.out.*.1 (default OUT_DIR: a new temporary dir);
# read them with callgrind_tree.py (functions with their inlined code merged) or
# `callgrind_annotate --inclusive=yes`. The server's log goes to a file, as in the benchmark.
set -euo pipefail

work=${1:?usage: callgrind.sh WORK_DIR TARGET_DIR [REQUESTS] [OUT_DIR]}
target=${2:?usage: callgrind.sh WORK_DIR TARGET_DIR [REQUESTS] [OUT_DIR]}
requests=${3:-50000}
out=${4:-$(mktemp -d)}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
vigia=$target/release/vigia
bench=$(ls -t "$target"/release/deps/load-* | grep -v '\.d$' | head -1)
for tool in valgrind callgrind_control curl python3; do
  command -v $tool > /dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
export NO_COLOR=1 VIGIA__SERVER__LISTEN=127.0.0.1:0

# Waits for "listening on http://…" in the given files; prints the address.
address() {
  for _ in $(seq 1200); do
    local found
    found=$(grep -ho 'listening on http://[0-9.:]*' "$@" 2> /dev/null | head -1 || true)
    if [ -n "$found" ]; then echo "${found#listening on }"; return; fi
    sleep 0.1
  done
  echo "no server started: $*" >&2; exit 1
}

# A token of the benchmark's user in its first tenant, from a login.
"$vigia" --config "$work/vigia.toml" serve 2> "$out/login.log" &
server=$!
addr=$(address "$out/login.log")
token=$(curl -sf -X POST -H 'X-Tenant: t000000' \
  -d 'username=juan.perez&password=SecurePass123' "$addr/api/v1/auth/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
kill $server; wait $server || true

# profile NAME COMMAND...: the server under callgrind, driven with whoami's request.
profile() {
  local name=$1; shift
  local dir=$out/$name
  mkdir -p "$dir"
  valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out.%p" \
    --log-file="$dir/valgrind.log" "$@" > "$dir/stdout.log" 2> "$dir/server.log" &
  local pid=$!
  local url
  url=$(address "$dir/stdout.log" "$dir/server.log")/api/v1/auth/whoami
  python3 "$here/drive.py" "$url" 2000 8 "Authorization: Bearer $token" > /dev/null
  callgrind_control -z $pid > /dev/null 2>&1
  python3 "$here/drive.py" "$url" "$requests" 8 "Authorization: Bearer $token"
  callgrind_control -d $pid > /dev/null 2>&1
  kill $pid; wait $pid || true
  local total
  total=$(grep -h '^summary:' "$dir"/callgrind.out.*.1 | awk '{print $2}')
  echo "$name: $((total / requests)) instructions per request ($dir)"
}

profile whoami "$vigia" --config "$work/vigia.toml" serve
VIGIA_BENCH_ROLE=openapi VIGIA_BENCH_BODY=$work/whoami.json profile openapi "$bench"
python3 "$here/callgrind_tree.py" "$out"/whoami/callgrind.out.*.1 "$requests" --top 30
