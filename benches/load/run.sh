#!/usr/bin/env bash
# Load-test harness for tokengate: see benches/load/README.md.
#
#   bash benches/load/run.sh [--duration 10s] [--connections 32] [--rounds 3] [--smoke]
#                            [--scenarios abcdem] [--tokens 10000] [--upload-connections 4]
#                            [--upload-mib 24] [--mem-tokens 100000] [--mem-soak 60s]
#                            [--out FILE] [--keep] [--no-build]
#
# Starts on loopback, under a scratch directory removed on exit: an nginx upstream, nginx
# plain, nginx+njs (auth_request + Authlete introspection), the Authlete emulator and
# tokengate; drives them with wrk (pinned to CPU 1) in interleaved rounds; prints Markdown
# tables. Run from anywhere; needs root only to apt-get install what is missing.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

DURATION=10s
CONNECTIONS=32
ROUNDS=3
SMOKE=0
SCENARIOS=abcdem
NTOKENS=10000
MEM_TOKENS=""                  # (m): tokens cached (default 100000; --smoke: 10000)
MEM_SOAK=""                    # (m): bounded-load duration (default 60s; --smoke: 10s)
UPLOAD_CONNECTIONS=4
UPLOAD_MIB=24
OUT=""
KEEP=0
BUILD=1
QUIET_WAIT=180                 # before each measured run, wait up to this long for other load to stop
QUIET_CORES=0.3                # "quiet" = other processes use less than this many cores
WRK_CPU=${WRK_CPU:-1}          # wrk runs on this CPU (taskset -c); servers are not pinned
SCOPE=bench.read
SERVICE_ID=1000000001
SERVICE_TOKEN=emulator-service-token
ARGS_GIVEN="$*"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --smoke) SMOKE=1; shift ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --tokens) NTOKENS=$2; shift 2 ;;
        --upload-connections) UPLOAD_CONNECTIONS=$2; shift 2 ;;
        --upload-mib) UPLOAD_MIB=$2; shift 2 ;;
        --mem-tokens) MEM_TOKENS=$2; shift 2 ;;
        --mem-soak) MEM_SOAK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done
if [ "$SMOKE" = 1 ]; then
    DURATION=2s
    ROUNDS=1
    QUIET_WAIT=0
    MEM_TOKENS=${MEM_TOKENS:-10000}
    MEM_SOAK=${MEM_SOAK:-10s}
fi
MEM_TOKENS=${MEM_TOKENS:-100000}
MEM_SOAK=${MEM_SOAK:-60s}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Duration in whole seconds (wrk syntax: 10, 10s, 2m, 1h).
secs_of() {
    local d=$1
    case "$d" in
        *s) echo "${d%s}" ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *h) echo $(( ${d%h} * 3600 )) ;;
        *) echo "$d" ;;
    esac
}
DUR_S=$(secs_of "$DURATION")
[[ "$DUR_S" =~ ^[0-9]+$ && "$DUR_S" -ge 1 ]] || die "--duration must be whole seconds (e.g. 10s), got $DURATION"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 ]] || die "--rounds must be >= 1"
[[ "$CONNECTIONS" =~ ^[0-9]+$ && "$CONNECTIONS" -ge 1 ]] || die "--connections must be >= 1"
[[ "$MEM_TOKENS" =~ ^[0-9]+$ && "$MEM_TOKENS" -ge 100 ]] || die "--mem-tokens must be >= 100"
MEM_SOAK_S=$(secs_of "$MEM_SOAK")
[[ "$MEM_SOAK_S" =~ ^[0-9]+$ && "$MEM_SOAK_S" -ge 2 ]] || die "--mem-soak must be whole seconds >= 2 (e.g. 60s), got $MEM_SOAK"

# ---------------------------------------------------------------------------------------------
# 1. Dependencies
# ---------------------------------------------------------------------------------------------
NJS_MODULE=/usr/lib/nginx/modules/ngx_http_js_module.so
install_deps() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx)
    [ -f "$NJS_MODULE" ] || missing+=(libnginx-mod-http-js)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v pgrep >/dev/null || missing+=(procps)
    command -v python3 >/dev/null || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
install_deps
command -v cargo >/dev/null || die "cargo not found (the Rust toolchain is needed to build tokengate)"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-load.XXXXXX")
RES=$SCRATCH/results
mkdir -p "$RES"
PIDS=()
WRK_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$WRK_PID" ] && kill -TERM "$WRK_PID" 2>/dev/null || true
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then
        log "scratch kept: $SCRATCH"
    else
        rm -rf "$SCRATCH"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# python3 with `cryptography` (the base interpreter usually has it; else a venv in the scratch dir).
PY=python3
if ! python3 -c 'import cryptography' 2>/dev/null; then
    log "python3 lacks 'cryptography': installing it into a venv under $SCRATCH"
    if ! python3 -m venv "$SCRATCH/venv" 2>/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$SCRATCH/venv"
    fi
    "$SCRATCH/venv/bin/pip" install -q cryptography
    PY=$SCRATCH/venv/bin/python
fi

# ---------------------------------------------------------------------------------------------
# 2. Build
# ---------------------------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TG=$TARGET_DIR/release/tokengate
if [ "$BUILD" = 1 ]; then
    log "cargo build --release"
    ok=0
    for attempt in 1 2 3 4 5; do
        if (cd "$ROOT" && cargo build --release) >"$SCRATCH/build.log" 2>&1; then
            tail -n 1 "$SCRATCH/build.log" >&2
            ok=1
            break
        fi
        tail -n 15 "$SCRATCH/build.log" >&2
        log "build failed (attempt $attempt/5; another engineer may be mid-edit): retrying in 60 s"
        sleep 60
    done
    [ "$ok" = 1 ] || die "cargo build --release kept failing"
fi
[ -x "$TG" ] || die "$TG not found (build first or drop --no-build)"
# Run a private copy: others sharing the target dir may relink it while this runs.
cp "$TG" "$SCRATCH/tokengate"
TG_SRC=$TG
TG=$SCRATCH/tokengate
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)

# ---------------------------------------------------------------------------------------------
# 3. Servers
# ---------------------------------------------------------------------------------------------
# Distinct free loopback ports, all held open until every one is chosen.
read -r P_UP P_PLAIN P_NJS P_EMU P_TG P_ADMIN P_PLAIN_1M < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(7):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
L=127.0.0.1
URL_PATH=/api/items/1

port_open() { (exec 3<>"/dev/tcp/$L/$1") 2>/dev/null; }
wait_port() { # port pid name
    for _ in $(seq 200); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up (see $SCRATCH/$3.log)"
        sleep 0.05
    done
    die "$3 did not open port $1 (see $SCRATCH/$3.log)"
}
cpu_ticks() { # utime+stime of a process (all threads), in clock ticks
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    rest=${stat##*) }
    set -- $rest
    echo $(( ${12} + ${13} ))
}
CLK_TCK=$(getconf CLK_TCK)
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
nginx_worker() { # master pid -> its (single) worker pid, waiting for the fork
    local w
    for _ in $(seq 100); do
        w=$(pgrep -P "$1" | head -n 1 || true)
        [ -n "$w" ] && { echo "$w"; return 0; }
        sleep 0.05
    done
    die "no nginx worker under master $1"
}

# CPU used by processes that are not part of this harness (other builds/tests on the machine):
# user+nice+system ticks of all CPUs from /proc/stat minus our servers' ticks minus the ticks of
# children this shell reaped (wrk, helpers) in the same window.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat; }
ours_ticks() {
    local s=0 p
    for p in "${PIDS[@]}" ${W_UP:-} ${W_PLAIN:-} ${W_NJS:-}; do s=$((s + $(cpu_ticks "$p"))); done
    echo "$s"
}
cpu_snapshot() { # -> $SNAP = "walltime busy ours children"; must run in the main shell (no $(...))
    times >"$SCRATCH/times"   # `times`: cumulative user+sys of the children this shell reaped
    local now=$EPOCHREALTIME children
    children=$(awk -v t="$CLK_TCK" 'END { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%d", s * t }' "$SCRATCH/times")
    SNAP="$now $(busy_ticks) $(ours_ticks) $children"
}
foreign_cores() { # snapshot0 snapshot1 -> cores used by other processes in between
    awk -v t="$CLK_TCK" -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        f = ((y[2] - x[2]) - (y[3] - x[3]) - (y[4] - x[4])) / t / (y[1] - x[1]);
        if (f < 0) f = 0; printf "%.2f", f }'
}
# Waits (up to $QUIET_WAIT s) until other processes use less than $QUIET_CORES cores.
wait_quiet() {
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    local start=$SECONDS a b f
    while :; do
        cpu_snapshot; a=$SNAP; sleep 1; cpu_snapshot; b=$SNAP
        f=$(foreign_cores "$a" "$b")
        awk -v f="$f" -v m="$QUIET_CORES" 'BEGIN { exit !(f < m) }' && return 0
        if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
            log "machine still busy (other processes use $f cores); measuring anyway"
            return 0
        fi
        log "other processes use $f cores; waiting for a quiet machine"
        sleep 4
    done
}

nginx_common() { # prefix
    cat <<EOF
  access_log off;
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
EOF
}
nginx_main() { # prefix [load js]
    if [ "${2:-}" = js ]; then echo "load_module $NJS_MODULE;"; fi
    # workers must reach the (0700) scratch dir for temp files and the cache
    if [ "$(id -u)" = 0 ]; then echo "user root;"; fi
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 8192; }
EOF
}

start_nginx() { # name conf-text
    local p=$SCRATCH/$1
    mkdir -p "$p/logs" "$p/tmp" "$p/cache"
    printf '%s\n' "$2" >"$p/nginx.conf"
    nginx -t -q -p "$p" -e "$p/logs/error.log" -c "$p/nginx.conf" 2>"$SCRATCH/$1.log" \
        || { cat "$SCRATCH/$1.log" >&2; die "nginx config $1 is invalid"; }
    nginx -p "$p" -e "$p/logs/error.log" -c "$p/nginx.conf" >>"$SCRATCH/$1.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_${1//-/_}=$pid"
}

UP_CONF=$(cat <<EOF
$(nginx_main "$SCRATCH/upstream" js)
http {
$(nginx_common "$SCRATCH/upstream")
  js_path "$HERE";
  js_import sink from sink.js;
  server {
    listen $L:$P_UP backlog=4096;
    client_max_body_size 0;
    client_body_buffer_size 32m;
    location / {
      default_type application/json;
      return 200 '{"ok":true,"service":"upstream"}\n';
    }
    location = /api/upload { js_content sink.sink; }
    location = /api/upload-check { js_content sink.count; }
  }
}
EOF
)

PLAIN_CONF=$(cat <<EOF
$(nginx_main "$SCRATCH/nginx-plain")
http {
$(nginx_common "$SCRATCH/nginx-plain")
  upstream origin { server $L:$P_UP; keepalive 64; keepalive_requests 100000000; }
  server {
    listen $L:$P_PLAIN backlog=4096;
    client_max_body_size 0;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
  }
  # Same, with a 1 MiB body buffer (default 16 KiB): only used in the upload scenario, to show
  # how much of nginx's upload speed is its default buffer size.
  server {
    listen $L:$P_PLAIN_1M backlog=4096;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
  }
}
EOF
)

NJS_CONF=$(cat <<EOF
$(nginx_main "$SCRATCH/nginx-njs" js)
http {
$(nginx_common "$SCRATCH/nginx-njs")
  js_path "$HERE";
  js_import authlete from authlete.js;
  proxy_cache_path $SCRATCH/nginx-njs/cache levels=1:2 keys_zone=token_responses:16m max_size=256m inactive=60s use_temp_path=off;
  upstream origin   { server $L:$P_UP;  keepalive 64; keepalive_requests 100000000; }
  upstream authlete { server $L:$P_EMU; keepalive 32; keepalive_requests 100000000; }
  # Only token68 characters, so the token can be pasted into the JSON body safely.
  map \$http_authorization \$access_token {
    default "";
    "~^Bearer +(?<tok>[A-Za-z0-9._~+/-]+=*)\$" \$tok;
  }
  server {
    listen $L:$P_NJS backlog=4096;
    client_max_body_size 0;
    location / {
      auth_request /_auth;
      auth_request_set \$auth_subject \$sent_http_x_auth_subject;
      auth_request_set \$auth_scopes \$sent_http_x_auth_scopes;
      proxy_set_header X-Auth-Subject \$auth_subject;
      proxy_set_header X-Auth-Scopes \$auth_scopes;
      proxy_set_header Authorization "";
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
    location = /_auth {
      internal;
      set \$required_scope "$SCOPE";
      js_content authlete.introspect;
    }
    location = /_authlete_introspection {
      internal;
      proxy_method POST;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $SERVICE_TOKEN";
      proxy_set_header Content-Type "application/json";
      proxy_set_header Accept "application/json";
      proxy_set_header DPoP "";
      proxy_pass_request_body off;
      proxy_set_body '{"token":"\$access_token"}';
      proxy_pass http://authlete/api/$SERVICE_ID/auth/introspection;
      proxy_cache token_responses;
      proxy_cache_key \$http_authorization;
      proxy_cache_methods GET HEAD POST;
      proxy_cache_lock on;
      proxy_cache_valid 200 10s;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
    }
  }
}
EOF
)

# Tokens: one warm token, $NTOKENS for (b), $NTOKENS never-seen ones for (c), one DPoP-bound,
# and (only when (m) runs) $MEM_TOKENS for (m), made alike. The emulator preloads the first sets
# from --tokens; the (m) set goes through POST /emulator/tokens (same spec, same insert), because
# the emulator's YAML/JSON loader refuses files over 250,000 nodes (~20,000 tokens).
log "scratch: $SCRATCH"
DPOP_KEY=$SCRATCH/dpop.key
DPOP_JKT=$("$TG" dpop-proof --key "$DPOP_KEY" --print-jkt)
[ "$("$PY" "$HERE/gen_proofs.py" --key "$DPOP_KEY" --print-jkt)" = "$DPOP_JKT" ] \
    || die "gen_proofs.py and tokengate disagree on the key thumbprint"
MEM_GEN=0
[[ "$SCENARIOS" == *m* ]] && MEM_GEN=$MEM_TOKENS
"$PY" - "$SCRATCH" "$NTOKENS" "$SCOPE" "$MEM_GEN" <<'EOF'
import json, secrets, sys
scratch, n, scope, n_mem = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def spec(i, kind):
    return {"access_token": secrets.token_urlsafe(32), "subject": f"{kind}-{i}", "client_id": 1001,
            "scopes": [scope], "expires_in": 86400}
sets = {"one": [spec(0, "one")], "many": [spec(i, "many") for i in range(n)],
        "cold": [spec(i, "cold") for i in range(n)]}
if n_mem:
    sets["mem"] = [spec(i, "mem") for i in range(n_mem)]
everything = []
for name, specs in sets.items():
    with open(f"{scratch}/tokens-{name}.txt", "w") as f:
        f.writelines(s["access_token"] + "\n" for s in specs)
    if name == "mem":
        json.dump(specs, open(f"{scratch}/emulator-tokens-mem.json", "w"))
    else:
        everything += specs
json.dump(everything, open(f"{scratch}/emulator-tokens.json", "w"))
EOF
TOKEN=$(cat "$SCRATCH/tokens-one.txt")

log "starting upstream, nginx plain, emulator, nginx+njs, tokengate"
start_nginx upstream "$UP_CONF"
wait_port "$P_UP" "$PID_upstream" upstream
start_nginx nginx-plain "$PLAIN_CONF"
wait_port "$P_PLAIN" "$PID_nginx_plain" nginx-plain

RUST_LOG=warn "$TG" emulator --listen "$L:$P_EMU" --tokens "$SCRATCH/emulator-tokens.json" \
    >"$SCRATCH/emulator.log" 2>&1 &
PID_EMU=$!
PIDS+=("$PID_EMU")
wait_port "$P_EMU" "$PID_EMU" emulator
EMU=http://$L:$P_EMU

start_nginx nginx-njs "$NJS_CONF"
wait_port "$P_NJS" "$PID_nginx_njs" nginx-njs

# The DPoP-bound token is minted through the emulator's API, as a client would get one.
DPOP_TOKEN=$(curl -sf -X POST -H 'Content-Type: application/json' \
    -d "{\"subject\":\"dpop-0\",\"client_id\":1001,\"scopes\":[\"$SCOPE\"],\"expires_in\":86400,\"dpop_jkt\":\"$DPOP_JKT\"}" \
    "$EMU/emulator/tokens" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
echo "$DPOP_TOKEN" >"$SCRATCH/tokens-dpop.txt"

if [ "$MEM_GEN" != 0 ]; then
    log "(m) creating $MEM_GEN tokens in the emulator (POST /emulator/tokens)"
    "$PY" - "$L" "$P_EMU" "$SCRATCH/emulator-tokens-mem.json" <<'EOF' || die "could not create the (m) tokens in the emulator"
import http.client, json, sys, threading
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
specs = json.load(open(path))
errors = []
def post(chunk):
    c = http.client.HTTPConnection(host, port, timeout=30)
    for s in chunk:
        c.request("POST", "/emulator/tokens", body=json.dumps(s), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 201 or json.loads(body)["access_token"] != s["access_token"]:
            errors.append(f"{r.status} {body[:200]!r}")
            return
threads = [threading.Thread(target=post, args=(specs[i::4],)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit(f"POST /emulator/tokens: {errors[0]}")
EOF
fi

write_tg_config() { # file max_entries
    cat >"$1" <<EOF
# Generated by benches/load/run.sh
listen: "$L:$P_TG"
admin_listen: "$L:$P_ADMIN"
introspection:
  authlete:
    base_url: "$EMU"
    api_version: 3
    service_id: "$SERVICE_ID"
    access_token: "$SERVICE_TOKEN"
  timeout_ms: 2000
  cache:
    max_entries: $2
    max_ttl_secs: 300
    negative_ttl_secs: 5
dpop:
  enabled: true
  max_age_secs: 60
  clock_skew_secs: 5
upstreams:
  origin:
    url: "http://$L:$P_UP"
    timeout_ms: 30000
routes:
  - name: api
    path: /api/**
    upstream: origin
    scopes: [$SCOPE]
EOF
    "$TG" check --config "$1" >"$SCRATCH/tokengate-check.log" 2>&1 \
        || { cat "$SCRATCH/tokengate-check.log" >&2; die "generated tokengate config $1 is invalid"; }
}
TG_CONFIG=$SCRATCH/tokengate.yaml
write_tg_config "$TG_CONFIG" 100000
# (m) caches $MEM_TOKENS tokens plus the warm-up one: 10 % headroom so that neither that token
# nor moka's approximate size accounting evicts (or refuses to admit) any of them. For 100,000
# tokens (110,000 entries) moka's frequency sketch is the same 1 MiB as for the default 100,000.
MEM_MAX_ENTRIES=$((MEM_TOKENS + MEM_TOKENS / 10))
if [ "$MEM_GEN" != 0 ]; then write_tg_config "$SCRATCH/tokengate-mem.yaml" "$MEM_MAX_ENTRIES"; fi

TG_STARTS=0
start_tokengate() {
    TG_STARTS=$((TG_STARTS + 1))
    RUST_LOG=warn "$TG" run --config "$TG_CONFIG" >>"$SCRATCH/tokengate.log" 2>&1 &
    PID_TG=$!
    PIDS+=("$PID_TG")
    wait_port "$P_TG" "$PID_TG" tokengate
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$L:$P_ADMIN/readyz")" = 200 ] && return 0
        sleep 0.05
    done
    die "tokengate /readyz never answered 200"
}
stop_tokengate() {
    kill -TERM "$PID_TG" 2>/dev/null || true
    wait "$PID_TG" 2>/dev/null || true
    local keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" != "$PID_TG" ] && keep+=("$pid"); done
    PIDS=("${keep[@]}")
    # the listener must be gone before the next start binds the same port
    for _ in $(seq 100); do port_open "$P_TG" || return 0; sleep 0.05; done
    die "tokengate port $P_TG still open after stop"
}
start_tokengate

# Workers of each nginx (CPU and memory are read from them) and the HTTP bases.
W_UP=$(nginx_worker "$PID_upstream")
W_PLAIN=$(nginx_worker "$PID_nginx_plain")
W_NJS=$(nginx_worker "$PID_nginx_njs")
declare -A BASE=( [direct]="http://$L:$P_UP" [nginx-plain]="http://$L:$P_PLAIN" [nginx-plain-1m]="http://$L:$P_PLAIN_1M"
                  [nginx-njs]="http://$L:$P_NJS" [tokengate]="http://$L:$P_TG" )
proxy_pid() {
    case "$1" in
        direct) echo "" ;;
        nginx-plain*) echo "$W_PLAIN" ;;
        nginx-njs) echo "$W_NJS" ;;
        tokengate*) echo "$PID_TG" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Sanity checks: every target answers as expected before anything is measured.
# ---------------------------------------------------------------------------------------------
expect() { # code description curl-args...
    local want=$1 what=$2 got
    shift 2
    got=$(curl -s -o "$SCRATCH/last-body" -w '%{http_code}' "$@") || got="curl-failed"
    [ "$got" = "$want" ] || { log "body: $(head -c 300 "$SCRATCH/last-body" 2>/dev/null)"; die "sanity: $what: expected $want, got $got"; }
    log "ok  $want  $what"
}
fresh_proof() { # token url
    "$TG" dpop-proof --key "$DPOP_KEY" --method GET --url "$2" --token "$1"
}
dpop_warm() { # first DPoP request for the token: 2 introspection calls, then cached binding
    local u="${BASE[tokengate]}$URL_PATH"
    expect 200 "tokengate: DPoP-bound token with a fresh proof" \
        -H "Authorization: DPoP $DPOP_TOKEN" -H "DPoP: $(fresh_proof "$DPOP_TOKEN" "$u")" "$u"
}
sanity() {
    local t
    for t in direct nginx-plain; do
        expect 200 "$t: GET" "${BASE[$t]}$URL_PATH"
    done
    for t in nginx-njs tokengate; do
        expect 401 "$t: no token" "${BASE[$t]}$URL_PATH"
        expect 401 "$t: unknown token" -H "Authorization: Bearer not-a-token-$RANDOM" "${BASE[$t]}$URL_PATH"
        expect 200 "$t: valid Bearer token" -H "Authorization: Bearer $TOKEN" "${BASE[$t]}$URL_PATH"
    done
    expect 401 "tokengate: DPoP-bound token sent as Bearer" -H "Authorization: Bearer $DPOP_TOKEN" "${BASE[tokengate]}$URL_PATH"
    dpop_warm
    local p
    p=$(fresh_proof "$DPOP_TOKEN" "${BASE[tokengate]}$URL_PATH")
    expect 200 "tokengate: DPoP proof, first use" -H "Authorization: DPoP $DPOP_TOKEN" -H "DPoP: $p" "${BASE[tokengate]}$URL_PATH"
    expect 401 "tokengate: DPoP proof replayed" -H "Authorization: DPoP $DPOP_TOKEN" -H "DPoP: $p" "${BASE[tokengate]}$URL_PATH"
}
sanity

# ---------------------------------------------------------------------------------------------
# 4. Measurement
# ---------------------------------------------------------------------------------------------
printf 'scenario\ttarget\tround\trps\tp50_us\tp99_us\tnon2xx\terrors\trequests\tsecs\tmib_read\tlua\tproxy_cpu_s\temu_cpu_s\tup_cpu_s\tupload_mib\tother_cores\n' >"$RES/results.tsv"
: >"$RES/notes.tsv"
note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RES/notes.tsv"; log "note ($1) $2: $3"; }

# Runs wrk (pinned to $WRK_CPU), stores its output, and optionally records a result row.
#   wrk_run <record:yes|no> <scenario> <target> <round> <duration> <connections> <url> [wrk args...]
LAST_OUT=""
wrk_run() {
    local record=$1 scen=$2 target=$3 round=$4 dur=$5 conns=$6 url=$7
    shift 7
    local out="$RES/$scen-$target-r$round.txt"
    [ "$record" = yes ] || out="$RES/warm-$scen-$target-$RANDOM.txt"
    local ppid; ppid=$(proxy_pid "$target")
    local p0=0 e0 u0
    [ -n "$ppid" ] && p0=$(cpu_ticks "$ppid")
    e0=$(cpu_ticks "$PID_EMU"); u0=$(cpu_ticks "$W_UP")
    if [ "$record" = yes ] && [ "${SKIP_QUIET:-0}" != 1 ]; then wait_quiet; fi
    cpu_snapshot; local c0=$SNAP
    taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"$dur" --latency "$@" "$url" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$out" >&2; die "wrk failed ($scen $target)"; }
    WRK_PID=""
    cpu_snapshot; local c1=$SNAP
    local p1=0 e1 u1
    [ -n "$ppid" ] && p1=$(cpu_ticks "$ppid")
    e1=$(cpu_ticks "$PID_EMU"); u1=$(cpu_ticks "$W_UP")
    LAST_OUT=$out
    local parsed; parsed=$("$PY" "$HERE/report.py" parse "$out")
    if [ "$record" = yes ]; then
        local pcpu=nan
        [ -n "$ppid" ] && pcpu=$(awk -v a="$p0" -v b="$p1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
        local ecpu ucpu
        ecpu=$(awk -v a="$e0" -v b="$e1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
        ucpu=$(awk -v a="$u0" -v b="$u1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
        local fcpu; fcpu=$(foreign_cores "$c0" "$c1")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$target" "$round" "$parsed" \
            "$pcpu" "$ecpu" "$ucpu" "${UPLOAD_MIB_ROW:-0}" "$fcpu" >>"$RES/results.tsv"
        local rps p50 p99 n2 er
        IFS=$'\t' read -r rps p50 p99 n2 er _ <<<"$parsed"
        log "$(printf '%-3s %-18s round %s: %10.0f req/s  p50 %8.0f us  p99 %8.0f us  non-2xx %s  errors %s  other CPU %s' \
            "($scen)" "$target" "$round" "$rps" "$p50" "$p99" "$n2" "$er" "$fcpu")"
    fi
}
lua_field() { sed -n "s/^LUA .*$1=\([0-9]*\).*/\1/p" "$LAST_OUT" | tail -n 1; }
has() { [[ "$SCENARIOS" == *"$1"* ]]; }
log_lines() { grep -ciE ' (WARN|ERROR) ' "$SCRATCH/tokengate.log" || true; }
LOG_MARK=0
log_mark() { LOG_MARK=$(log_lines); }
log_note() { # scenario
    local n=$(( $(log_lines) - LOG_MARK ))
    [ "$n" = 0 ] || note "$1" "tokengate warn/error log lines during this scenario" \
        "$n, e.g. \`$(grep -iE ' (WARN|ERROR) ' "$SCRATCH/tokengate.log" | tail -n 1 | cut -c1-200)\`"
}
WARM_DUR=1s
[ "$SMOKE" = 1 ] && WARM_DUR=1s

# --- (a) one token, warm ---------------------------------------------------------------------
if has a; then
    log_mark
    log "(a) one Bearer token, warm: direct, nginx plain, nginx+njs, tokengate"
    for t in direct nginx-plain nginx-njs tokengate; do
        wrk_run no a "$t" 0 "$WARM_DUR" "$CONNECTIONS" "${BASE[$t]}$URL_PATH" -H "Authorization: Bearer $TOKEN"
    done
    for r in $(seq "$ROUNDS"); do
        for t in direct nginx-plain nginx-njs tokengate; do
            wrk_run yes a "$t" "$r" "$DURATION" "$CONNECTIONS" "${BASE[$t]}$URL_PATH" -H "Authorization: Bearer $TOKEN"
        done
    done
fi

has a && log_note a

# --- (b) 10,000 tokens cycled, warm ----------------------------------------------------------
if has b; then
    log_mark
    log "(b) $NTOKENS distinct Bearer tokens cycled (tokens.lua), warm"
    for t in direct nginx-plain nginx-njs tokengate; do
        # warm until every token has been sent at least once
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            TOKENS_FILE=$SCRATCH/tokens-many.txt wrk_run no b "$t" 0 2s "$CONNECTIONS" "${BASE[$t]}$URL_PATH" -s "$HERE/tokens.lua"
            [ "$(lua_field distinct)" = "$NTOKENS" ] && break
        done
        [ "$(lua_field distinct)" = "$NTOKENS" ] || die "(b) could not warm all $NTOKENS tokens on $t"
    done
    for r in $(seq "$ROUNDS"); do
        for t in direct nginx-plain nginx-njs tokengate; do
            TOKENS_FILE=$SCRATCH/tokens-many.txt wrk_run yes b "$t" "$r" "$DURATION" "$CONNECTIONS" "${BASE[$t]}$URL_PATH" -s "$HERE/tokens.lua"
        done
    done
    note b "nginx+njs cache" "proxy_cache entries live 10 s, so the DIY peer re-introspects every token every 10 s during the run (tokengate keeps them up to max_ttl_secs = 300 s)"
fi

has b && log_note b

# --- (c) cold start ----------------------------------------------------------------------------
if has c; then
    log_mark
    log "(c) cold start: restarting tokengate, then $NTOKENS never-seen tokens"
    stop_tokengate
    start_tokengate
    before=$(curl -sf "$EMU/emulator/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["introspection_calls"])')
    cdur=$DUR_S
    [ "$cdur" -lt 5 ] && cdur=5
    TOKENS_FILE=$SCRATCH/tokens-cold.txt wrk_run yes c tokengate-cold 1 "${cdur}s" "$CONNECTIONS" "${BASE[tokengate]}$URL_PATH" -s "$HERE/tokens.lua"
    sleep 0.5
    after=$(curl -sf "$EMU/emulator/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["introspection_calls"])')
    distinct=$(lua_field distinct)
    sent=$(lua_field sent)
    calls=$((after - before))
    verdict=FAIL
    if [ "$distinct" = "$NTOKENS" ] && [ "$sent" -ge $((NTOKENS + CONNECTIONS)) ] && [ "$calls" = "$distinct" ]; then
        verdict=PASS
    fi
    note c "introspection calls (emulator /emulator/stats)" "before $before, after $after: $calls calls"
    note c "distinct tokens sent" "$distinct (requests sent: $sent, duration ${cdur}s)"
    note c "result" "$verdict (introspection calls must equal distinct tokens: $calls vs $distinct)"
    echo "$verdict" >"$RES/cold-verdict"
fi

has c && log_note c

# --- (d) DPoP ------------------------------------------------------------------------------------
if has d; then
    log_mark
    log "(d) DPoP: single-use proofs (gen_proofs.py right before each run) vs Bearer"
    dpop_warm
    DURL="${BASE[tokengate]}$URL_PATH"
    gen() { # count out
        "$PY" "$HERE/gen_proofs.py" --key "$DPOP_KEY" --tokens "$SCRATCH/tokens-dpop.txt" \
            --method GET --url "$DURL" --count "$1" --out "$2" 2>>"$SCRATCH/gen_proofs.log"
        tail -n 1 "$SCRATCH/gen_proofs.log" | sed 's/^/    /' >&2
    }
    # Calibration (not recorded): how many proofs per second tokengate consumes here.
    CAL_N=60000
    gen "$CAL_N" "$SCRATCH/proofs.txt"
    PROOFS_FILE=$SCRATCH/proofs.txt wrk_run no d tokengate-dpop 0 2s "$CONNECTIONS" "$DURL" -s "$HERE/dpop.lua"
    rate=$("$PY" "$HERE/report.py" parse "$LAST_OUT" | cut -f1)
    # a calibration run that exhausted its proofs measured fast refusals: assume the cap
    [ "$(lua_field proofs_exhausted)" = 0 ] || rate=$CAL_N
    per_run=$(awk -v r="$rate" -v d="$DUR_S" 'BEGIN { printf "%d", r * d * 1.4 + 5000 }')
    note d "proofs per run" "$per_run (calibrated at ${rate%.*} req/s × ${DUR_S} s × 1.4 + 5000; generated right before each DPoP run)"
    exhausted_total=0
    for r in $(seq "$ROUNDS"); do
        TOKENS_FILE=$SCRATCH/tokens-one.txt wrk_run yes d tokengate-bearer "$r" "$DURATION" "$CONNECTIONS" "$DURL" -s "$HERE/tokens.lua"
        # wait for quiet *before* generating: the proofs must be used within 60 s of their iat
        wait_quiet
        gen "$per_run" "$SCRATCH/proofs.txt"
        PROOFS_FILE=$SCRATCH/proofs.txt SKIP_QUIET=1 wrk_run yes d tokengate-dpop "$r" "$DURATION" "$CONNECTIONS" "$DURL" -s "$HERE/dpop.lua"
        exhausted_total=$((exhausted_total + $(lua_field proofs_exhausted)))
    done
    rm -f "$SCRATCH/proofs.txt"
    if [ "$exhausted_total" = 0 ]; then
        note d "proof supply" "sufficient: no proof was used twice"
    else
        note d "proof supply" "WARNING: the proof file ran out $exhausted_total time(s); replayed proofs were refused (counted in non-2xx)"
    fi
fi

has d && log_note d

# --- (e) uploads -----------------------------------------------------------------------------------
if has e; then
    log_mark
    UP_BYTES=$((UPLOAD_MIB * 1024 * 1024))
    log "(e) ${UPLOAD_MIB} MiB uploads, $UPLOAD_CONNECTIONS connections"
    note e "tokengate VmHWM before restart (after the earlier scenarios)" "$(status_kb "$PID_TG" VmHWM) kB"
    stop_tokengate
    start_tokengate
    expect 200 "tokengate: warm-up GET" -H "Authorization: Bearer $TOKEN" "${BASE[tokengate]}$URL_PATH"
    hwm0=$(status_kb "$PID_TG" VmHWM)
    head -c "$UP_BYTES" /dev/zero >"$SCRATCH/upload.bin"
    for t in direct nginx-plain nginx-plain-1m tokengate; do
        got=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
            --data-binary @"$SCRATCH/upload.bin" "${BASE[$t]}/api/upload-check") || die "(e) upload check failed on $t"
        [ "$got" = "{\"received\":$UP_BYTES}" ] || die "(e) upstream received $got through $t, expected $UP_BYTES bytes"
        log "ok  upload of $UP_BYTES bytes reached the upstream intact through $t"
    done
    rm -f "$SCRATCH/upload.bin"
    for r in $(seq "$ROUNDS"); do
        for t in direct nginx-plain nginx-plain-1m tokengate; do
            UPLOAD_MIB_ROW=$UPLOAD_MIB UPLOAD_BYTES=$UP_BYTES AUTH_HEADER="Bearer $TOKEN" \
                wrk_run yes e "$t" "$r" "$DURATION" "$UPLOAD_CONNECTIONS" "${BASE[$t]}/api/upload" \
                -s "$HERE/upload.lua" --timeout 60s
        done
    done
    note e "tokengate peak RSS (VmHWM, fresh process)" "$hwm0 kB after one GET → $(status_kb "$PID_TG" VmHWM) kB after the uploads (VmRSS now $(status_kb "$PID_TG" VmRSS) kB)"
    note e "nginx plain worker peak RSS (VmHWM, whole run)" "$(status_kb "$W_PLAIN" VmHWM) kB"
fi

has e && log_note e

# --- (m) memory ----------------------------------------------------------------------------------
# (1) A fresh tokengate (cache sized for $MEM_TOKENS + 10 %) after one GET, then after one pass
#     of $MEM_TOKENS never-seen tokens: VmRSS/VmHWM from /proc/<pid>/status, bytes per cached
#     token, the emulator's introspection count (must be exactly $MEM_TOKENS), and a second pass
#     over all of them (must cause 0 introspection calls: every token stayed cached).
# (2) With them cached, wrk cycles through the first min(10,000, $MEM_TOKENS) for $MEM_SOAK_S s
#     while VmRSS is sampled; growth from the 2nd sample interval to the end must be < 2 MiB or
#     < 5 % (bounded memory under steady load).
emu_calls() { curl -sf "$EMU/emulator/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["introspection_calls"])'; }
tg_requests() { # requests tokengate has answered (sum of tokengate_requests_total over its labels)
    curl -sf "http://$L:$P_ADMIN/metrics" | awk '/^tokengate_requests_total[{ ]/ { s += $NF } END { printf "%d\n", s }'
}
tg_metric() { curl -sf "http://$L:$P_ADMIN/metrics" | awk -v m="$1" '$1 == m { printf "%d\n", $NF; exit }'; }
kib() { awk -v k="$1" 'BEGIN { printf "%d kB (%.1f MiB)", k, k / 1024 }'; }
# One pass over a token file: wrk (pinned, -t1, tokens.lua, $CONNECTIONS connections) runs until
# tokengate has answered as many requests as the file has tokens, then gets SIGINT (on which wrk
# stops, prints its summary and tokens.lua's LUA line). tokens.lua sends the tokens in file order,
# so every token has then been sent once; a few dozen more requests repeat the first tokens.
#   wrk_pass <name> <tokens file> <count>   -> $LAST_OUT; PASS_SECS
wrk_pass() {
    local name=$1 file=$2 n=$3 out="$RES/m-$1.txt" r0 t0 got start=$SECONDS
    r0=$(tg_requests)
    t0=$EPOCHREALTIME
    TOKENS_FILE=$file taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d3600s --latency \
        -s "$HERE/tokens.lua" "${BASE[tokengate]}$URL_PATH" >"$out" 2>&1 &
    WRK_PID=$!
    while :; do
        got=$(tg_requests)
        [ "$got" -ge $((r0 + n)) ] && break
        kill -0 "$WRK_PID" 2>/dev/null || { cat "$out" >&2; die "(m) wrk ended during pass $name"; }
        [ $((SECONDS - start)) -lt 1800 ] || die "(m) pass $name: only $((got - r0)) of $n requests answered in 30 min"
        sleep 0.2
    done
    kill -INT "$WRK_PID"
    wait "$WRK_PID" || { cat "$out" >&2; die "(m) wrk failed (pass $name)"; }
    WRK_PID=""
    LAST_OUT=$out
    PASS_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
}
# VmRSS/VmHWM of $PID_TG at the given offsets (s) from now: "offset<TAB>VmRSS<TAB>VmHWM" lines.
mem_sampler() { # out offsets...
    local out=$1 t0 off wait_us
    shift
    t0=${EPOCHREALTIME/./}
    for off in "$@"; do
        wait_us=$(( t0 + off * 1000000 - ${EPOCHREALTIME/./} ))
        [ "$wait_us" -gt 0 ] && sleep "$((wait_us / 1000000)).$(printf '%06d' $((wait_us % 1000000)))"
        printf '%s\t%s\t%s\n' "$off" "$(status_kb "$PID_TG" VmRSS)" "$(status_kb "$PID_TG" VmHWM)" >>"$out"
    done
}
forget_pid() { # drop a reaped PID from the cleanup list
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

if has m; then
    log_mark
    MEM_FAIL=()
    MEM_SOAK_TOKENS=$(( MEM_TOKENS < 10000 ? MEM_TOKENS : 10000 ))
    log "(m) memory: fresh tokengate, $MEM_TOKENS never-seen tokens cached, then ${MEM_SOAK_S} s over $MEM_SOAK_TOKENS of them"
    stop_tokengate
    TG_CONFIG=$SCRATCH/tokengate-mem.yaml   # (m) is the last scenario: later restarts keep it
    start_tokengate
    note m "setup" "fresh tokengate, \`introspection.cache.max_entries: $MEM_MAX_ENTRIES\` ($MEM_TOKENS tokens + 10 %), max_ttl_secs 300; $MEM_TOKENS tokens created in the emulator with the same spec as the (c) tokens; wrk -t1 -c$CONNECTIONS, tokens.lua"
    expect 200 "tokengate (memory config): warm-up GET" -H "Authorization: Bearer $TOKEN" "${BASE[tokengate]}$URL_PATH"
    rss0=$(status_kb "$PID_TG" VmRSS)
    hwm0=$(status_kb "$PID_TG" VmHWM)
    note m "before: fresh process after one GET" "VmRSS $(kib "$rss0"), VmHWM $(kib "$hwm0")"

    # (1) fill the cache: one pass over every token
    calls0=$(emu_calls)
    wrk_pass fill "$SCRATCH/tokens-mem.txt" "$MEM_TOKENS"
    sleep 0.5
    calls1=$(emu_calls)
    hwm1=$(status_kb "$PID_TG" VmHWM)
    rss1=$(status_kb "$PID_TG" VmRSS)
    entries=$(tg_metric tokengate_token_cache_entries || true)
    IFS=$'\t' read -r f_rps _ _ f_n2 f_err f_req _ _ _ < <("$PY" "$HERE/report.py" parse "$LAST_OUT")
    f_distinct=$(lua_field distinct)
    log "(m) fill pass: $f_distinct distinct tokens, $f_req requests in $PASS_SECS s; introspection calls $((calls1 - calls0)); VmHWM $hwm1 kB"
    note m "fill pass" "$f_distinct distinct tokens sent ($f_req requests, $PASS_SECS s, ${f_rps%.*} req/s), non-2xx $f_n2, socket errors $f_err"
    v=PASS
    if [ "$f_distinct" != "$MEM_TOKENS" ] || [ $((calls1 - calls0)) != "$MEM_TOKENS" ] || [ "$f_n2" != 0 ]; then
        v=FAIL; MEM_FAIL+=("fill pass")
    fi
    note m "introspection calls during the fill pass (emulator /emulator/stats)" "before $calls0, after $calls1: $((calls1 - calls0)) calls for $MEM_TOKENS tokens: $v"
    [ -n "$entries" ] && note m "cache entries after the fill pass (\`tokengate_token_cache_entries\`, moka's count, may lag)" "$entries"
    v=PASS
    [ "$hwm1" -lt $((100 * 1024)) ] || { v=FAIL; MEM_FAIL+=("peak RSS"); }
    note m "after: peak RSS with $MEM_TOKENS tokens cached (VmHWM)" "$(kib "$hwm1"): $v (target < 100 MiB); VmRSS now $(kib "$rss1")"
    note m "bytes per cached token" "$(awk -v a="$hwm1" -v b="$rss0" -v n="$MEM_TOKENS" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }') = (VmHWM after − VmRSS before) / $MEM_TOKENS; steady-state $(awk -v a="$rss1" -v b="$rss0" -v n="$MEM_TOKENS" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }') = (VmRSS after − VmRSS before) / $MEM_TOKENS"

    # second pass: everything must still be cached
    calls2=$(emu_calls)
    wrk_pass again "$SCRATCH/tokens-mem.txt" "$MEM_TOKENS"
    sleep 0.5
    calls3=$(emu_calls)
    IFS=$'\t' read -r a_rps _ _ a_n2 a_err a_req _ _ _ < <("$PY" "$HERE/report.py" parse "$LAST_OUT")
    a_distinct=$(lua_field distinct)
    v=PASS
    if [ "$a_distinct" != "$MEM_TOKENS" ] || [ "$calls3" != "$calls2" ] || [ "$a_n2" != 0 ]; then
        v=FAIL; MEM_FAIL+=("second pass")
    fi
    log "(m) second pass: $a_distinct distinct tokens, $a_req requests in $PASS_SECS s; new introspection calls $((calls3 - calls2))"
    note m "second pass over all $MEM_TOKENS tokens" "$a_distinct distinct tokens sent ($a_req requests, $PASS_SECS s, ${a_rps%.*} req/s, non-2xx $a_n2, socket errors $a_err); introspection calls $calls2 → $calls3: $((calls3 - calls2)) new: $v (must be 0)"

    # (2) bounded load: $MEM_SOAK_TOKENS of the cached tokens for $MEM_SOAK_S s, VmRSS sampled
    head -n "$MEM_SOAK_TOKENS" "$SCRATCH/tokens-mem.txt" >"$SCRATCH/tokens-mem-soak.txt"
    step=$(( MEM_SOAK_S / 12 )); [ "$step" -ge 1 ] || step=1
    offsets=()
    for ((o = 0; o < MEM_SOAK_S; o += step)); do offsets+=("$o"); done
    offsets+=("$MEM_SOAK_S")
    base_off=$((2 * step))
    : >"$RES/mem-samples.tsv"
    calls4=$(emu_calls)
    mem_sampler "$RES/mem-samples.tsv" "${offsets[@]}" &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
    # one second longer than the soak, so that the last sample is taken under load
    TOKENS_FILE=$SCRATCH/tokens-mem-soak.txt SKIP_QUIET=1 wrk_run yes m tokengate-soak 1 "$((MEM_SOAK_S + 1))s" \
        "$CONNECTIONS" "${BASE[tokengate]}$URL_PATH" -s "$HERE/tokens.lua"
    wait "$SAMPLER_PID" || true
    forget_pid "$SAMPLER_PID"
    calls5=$(emu_calls)
    log "(m) VmRSS samples (s, kB): $(cut -f1,2 "$RES/mem-samples.tsv" | tr '\t\n' ': ')"
    r_base=$(awk -v o="$base_off" '$1 == o { print $2 }' "$RES/mem-samples.tsv")
    r_end=$(awk -v o="$MEM_SOAK_S" '$1 == o { print $2 }' "$RES/mem-samples.tsv")
    if [ -z "$r_base" ] || [ -z "$r_end" ]; then die "(m) missing VmRSS samples (see $RES/mem-samples.tsv)"; fi
    growth=$((r_end - r_base))
    g=$(awk -v g="$growth" -v b="$r_base" 'BEGIN {
        pct = 100 * g / b
        v = (g < 2048 || pct < 5) ? "PASS" : "FAIL"
        why = (g < 2048) ? "below 2 MiB" : (pct < 5 ? "below 5 %" : "neither below 2 MiB nor below 5 %")
        printf "%s\t%+d kB (%+.2f %%), %s", v, g, pct, why }')
    v=${g%%$'\t'*}
    [ "$v" = PASS ] || MEM_FAIL+=("soak growth")
    note m "soak" "$MEM_SOAK_TOKENS of the cached tokens cycled for $MEM_SOAK_S s (wrk ran $((MEM_SOAK_S + 1)) s so the last sample is under load), VmRSS every $step s (table above)"
    note m "VmRSS growth, ${base_off} s → ${MEM_SOAK_S} s sample" "$(kib "$r_base") → $(kib "$r_end"): ${g#*$'\t'}: $v (rule: growth < 2 MiB or < 5 % of the ${base_off} s sample)"
    v=PASS
    [ "$calls5" = "$calls4" ] || { v=FAIL; MEM_FAIL+=("soak introspection"); }
    note m "introspection calls during the soak" "$((calls5 - calls4)): $v (must be 0)"
    note m "VmHWM after the soak" "$(kib "$(status_kb "$PID_TG" VmHWM)")"
    if [ ${#MEM_FAIL[@]} = 0 ]; then
        note m "result" "PASS"
        echo PASS >"$RES/mem-verdict"
    else
        note m "result" "FAIL: ${MEM_FAIL[*]}"
        echo "FAIL: ${MEM_FAIL[*]}" >"$RES/mem-verdict"
    fi
fi

has m && log_note m

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
warns=$(grep -ciE 'WARN|ERROR' "$SCRATCH/tokengate.log" || true)
[ "$warns" = 0 ] || log "tokengate logged $warns warning/error line(s); first: $(grep -iE 'WARN|ERROR' "$SCRATCH/tokengate.log" | head -n 3)"
nginx_errs=$(cat "$SCRATCH"/*/logs/error.log 2>/dev/null | grep -cE '\[(error|crit|alert|emerg)\]' || true)
[ "$nginx_errs" = 0 ] || log "nginx logged $nginx_errs error line(s), e.g.: $(cat "$SCRATCH"/*/logs/error.log | grep -E '\[(error|crit|alert|emerg)\]' | head -n 2)"

{
    printf 'duration\t%s\n' "$DURATION"
    printf 'connections\t%s (uploads: %s)\n' "$CONNECTIONS" "$UPLOAD_CONNECTIONS"
    printf 'rounds\t%s\n' "$ROUNDS"
    printf 'wrk\t-t1, taskset -c %s\n' "$WRK_CPU"
    printf 'tokengate log lines at warn+\t%s\n' "$warns"
    printf 'tokengate\t%s (commit %s, %s modified file(s) under src/ Cargo.*)\n' "$TG_SRC" "$GIT_REV" "$GIT_DIRTY"
} >"$RES/meta.tsv"

REPORT=$RES/report.md
{
    echo "## Results ($(date -u '+%Y-%m-%d %H:%M UTC'); \`bash benches/load/run.sh${ARGS_GIVEN:+ $ARGS_GIVEN}\`)"
    echo
    "$PY" "$HERE/report.py" table "$RES"
} >"$REPORT"
echo
cat "$REPORT"
if [ -n "$OUT" ]; then
    cp "$REPORT" "$OUT"
    log "report written to $OUT"
fi
if [ "$KEEP" = 1 ]; then log "raw wrk outputs: $RES"; fi
FAILED=0
if [ -f "$RES/cold-verdict" ] && [ "$(cat "$RES/cold-verdict")" != PASS ]; then
    log "cold-start check FAILED"
    FAILED=1
fi
if [ -f "$RES/mem-verdict" ] && [ "$(cat "$RES/mem-verdict")" != PASS ]; then
    log "memory check $(cat "$RES/mem-verdict")"
    FAILED=1
fi
if [ "$FAILED" = 1 ]; then
    exit 1
fi
