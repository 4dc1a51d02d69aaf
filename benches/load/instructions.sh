#!/usr/bin/env bash
# User-space instructions per proxied request, tokengate vs nginx as a plain proxy, counted by
# valgrind's callgrind: a figure that does not move with the machine's noise, unlike req/s.
#
#   bash benches/load/instructions.sh [--duration 6] [--connections 8] [--no-build]
#
# Starts on loopback, in a scratch directory removed on exit: an nginx upstream (a small JSON
# body), the Authlete emulator with one token, then, one at a time under callgrind, nginx
# (`proxy_pass` with upstream keepalive, one process) and tokengate (scenario (a): one Bearer
# token, warm cache, scope check, identity headers). Each is warmed up uninstrumented, then
# instrumented while wrk runs; the result is the instruction count divided by the requests.
# Kernel time is not counted (callgrind sees user space only). Under valgrind, aws-lc's
# SHA-256 runs its AVX path rather than SHA-NI, which inflates tokengate's token hashing.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DURATION=6
CONNECTIONS=8
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2%s}; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "$BUILD" = 1 ]; then
    log "building tokengate (release)"
    (cd "$ROOT" && cargo build --release --quiet)
fi
TG=$ROOT/target/release/tokengate

S=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-instr.XXXXXX")
chmod 755 "$S"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$S"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_UP=$(free_port); P_PLAIN=$(free_port); P_EMU=$(free_port); P_TG=$(free_port); P_ADMIN=$(free_port)
TOKEN=instr-$(date +%s%N)

nginx_conf() { # name body
    cat >"$S/$1.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $S/$1.pid;
error_log $S/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $S/tmp; proxy_temp_path $S/tmp; fastcgi_temp_path $S/tmp;
  uwsgi_temp_path $S/tmp; scgi_temp_path $S/tmp;
  $2
}
EOF
}
mkdir -p "$S/tmp"
nginx_conf upstream "server { listen 127.0.0.1:$P_UP; location / { default_type application/json; return 200 '{\"ok\":true}'; } }"
nginx_conf plain "upstream backend { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_PLAIN; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
cat >"$S/tokens.json" <<EOF
[{"access_token":"$TOKEN","subject":"bench-user","client_id":1001,"scopes":["bench.read"],"expires_in":86400}]
EOF
cat >"$S/tokengate.yaml" <<EOF
listen: "127.0.0.1:$P_TG"
admin_listen: "127.0.0.1:$P_ADMIN"
introspection:
  authlete:
    base_url: "http://127.0.0.1:$P_EMU"
    service_id: "1000000001"
    access_token: "emulator-service-token"
upstreams:
  app:
    url: "http://127.0.0.1:$P_UP"
routes:
  - name: bench
    path: /bench/**
    upstream: app
    scopes: [bench.read]
EOF
cat >"$S/auth.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF

nginx -c "$S/upstream.conf" -p "$S" & PIDS+=($!)
RUST_LOG=warn "$TG" emulator --listen "127.0.0.1:$P_EMU" --tokens "$S/tokens.json" >"$S/emulator.log" 2>&1 & PIDS+=($!)

wait_ok() { # url
    for _ in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$1" || true)" = 200 ] && return 0
        sleep 0.2
    done
    log "no 200 from $1"; return 1
}

# measure NAME PORT CMD...: runs CMD under callgrind, prints "NAME requests instructions per-request".
measure() {
    local name=$1 port=$2; shift 2
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$S/$name.cg" "$@" >"$S/$name.vg" 2>&1 &
    local pid=$!
    wait_ok "http://127.0.0.1:$port/bench/1"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -s "$S/auth.lua" "http://127.0.0.1:$port/bench/1" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    local out
    out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$S/auth.lua" "http://127.0.0.1:$port/bench/1")
    callgrind_control -i off "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local requests non2xx ir
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    ir=$(awk '/Collected/ {gsub(",", "", $4); print $4}' "$S/$name.vg")
    [ -z "${non2xx:-}" ] || { log "$name: $non2xx non-2xx responses"; return 1; }
    printf '%s\t%s\t%s\t%s\n' "$name" "$requests" "$ir" "$(awk -v a="$ir" -v b="$requests" 'BEGIN { printf "%.0f", a / b }')"
}

log "nginx plain under callgrind"
NGINX_ROW=$(measure nginx-plain "$P_PLAIN" nginx -c "$S/plain.conf" -p "$S")
log "tokengate under callgrind"
TG_ROW=$(RUST_LOG=warn measure tokengate "$P_TG" "$TG" run --config "$S/tokengate.yaml")

echo "| target | requests | instructions | instructions per request | vs nginx plain |"
echo "|---|---:|---:|---:|---:|"
base=$(cut -f4 <<<"$NGINX_ROW")
for row in "$NGINX_ROW" "$TG_ROW"; do
    IFS=$'\t' read -r name requests ir per <<<"$row"
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$requests" "$ir" "$per" \
        "$(awk -v a="$per" -v b="$base" 'BEGIN { printf "%.2f×", a / b }')"
done
