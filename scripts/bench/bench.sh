#!/usr/bin/env bash
# make bench: the gateway's cost, measured as ratios in one run on this machine
# (PERFORMANCE.md). It starts the fleet through the launcher on the embedded store and
# measures, back to back:
#   1. the stack's reference (shared/stackbench): Fiber → one NATS hop → micro, no auth, no store;
#   2. GET /api/v1/tenants/{id} through the gateway (auth, tenant access, one NATS hop, bbolt);
#   3. the same tenant endpoint called directly over NATS (svc.tenant.v1.get);
#   4. GET /api/v1/agents/{id} through the gateway (PERFORMANCE.md's first row: ≥ 0.6 × 1.);
#   5. the same agent endpoint called directly over NATS (svc.agent.v1.get);
#   6. POST /api/v1/channels/{id}/messages, 200-byte body, 0 subscribers (≥ 0.7 × 1.);
#   7. WebSocket fan-out with scripts/wsbench: 1 REST publisher → 10 subscribers at
#      1,000 msg/s and at the publisher's maximum rate, and → 100 subscribers at 1,000 msg/s.
# Every row runs in enterprise tenants (no plan limit gets in the way of the load).
# Needs wrk (Debian: apt-get install wrk). Env: DURATION (10s), CONNS (64),
# STACKBENCH (path to shared/stackbench; skipped when absent), LOG_LEVEL (info),
# WS_DURATION (10s, each fan-out run).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WS_DURATION=${WS_DURATION:-10s}
STACKBENCH=${STACKBENCH:-$root/../shared/stackbench}

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# free_ports N: the first of N consecutive free ports (the launcher gives the gateway
# METRICS_ADDR and service i the port after it plus i).
free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
    held = []
    try:
        for p in range(base, base + n):
            t = socket.socket(); t.bind(("127.0.0.1", p)); held.append(t)
    except OSError:
        continue
    finally:
        for t in held: t.close()
    print(base); break
else:
    sys.exit("no range of free ports")
PY
}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

make -s build >/dev/null
go build -o "$work/natsload" ./scripts/natsload
go build -o "$work/wsbench" ./scripts/wsbench

results=()
wrk_line() { # label, wrk args...: prints "label: N req/s p50 p99"
	local label=$1; shift
	local out rps p50 p99
	out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$@")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	if grep -q "Non-2xx" <<<"$out"; then echo "bench: $label had non-2xx replies:"; echo "$out"; exit 1; fi
	results+=("$(printf '%-44s %10s req/s  p50 %8s  p99 %8s' "$label" "$rps" "$p50" "$p99")")
	last_rps=$rps
}
wsbench_line() { # label, wsbench args...: wsbench's own result line
	local label=$1; shift
	local out
	if ! out=$("$work/wsbench" -url "http://$HTTP_ADDR" -token "$admin_token" -tenant "$msg_tenant" -d "$WS_DURATION" "$@" 2>&1); then
		echo "bench: $label failed:"; echo "$out"; exit 1
	fi
	results+=("$(printf '%-44s %s' "$label" "$out")")
}
natsload_line() { # label, natsload args...: the same columns from natsload's one line
	local label=$1; shift
	local out
	out=$("$work/natsload" -url "$NATS_URL" -creds "$DATA_DIR/nats/nkeys/gateway.nk" -c "$CONNS" -d "$DURATION" "$@")
	if ! grep -q 'errors=0$' <<<"$out"; then echo "bench: $label had error replies:"; echo "$out"; exit 1; fi
	results+=("$(awk -v l="$label" '{printf "%-44s %10s req/s  p50 %8s  p99 %8s", l, $5, substr($7,5), substr($8,5)}' <<<"$out")")
}
ref_rps=""

# 1. Reference: the stack's own limit for one hop.
if [[ -d $STACKBENCH ]]; then
	cp -r "$STACKBENCH" "$work/stackbench"
	(cd "$work/stackbench" && GOWORK=off GOFLAGS=-mod=mod go build -o "$work/sb/" ./... >/dev/null 2>&1)
	np=$(free_port); hp=$(free_port)
	"$work/sb/echo-micro" -mode goroutine -nats-addr "127.0.0.1:$np" >"$work/echo.log" 2>&1 & pids+=($!)
	sleep 1
	NATS_URL="nats://127.0.0.1:$np" "$work/sb/fiber-nats" -addr "127.0.0.1:$hp" >"$work/fn.log" 2>&1 & pids+=($!)
	sleep 1
	wrk_line "stackbench fiber-nats (reference)" "http://127.0.0.1:$hp/api/v1/agents/01JBENCHAGENT0000000000001"
	ref_rps=$last_rps
	kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
else
	echo "bench: $STACKBENCH not found; skipping the reference"
fi

# 2 to 5. The fleet on the embedded store.
hp=$(free_port); np=$(free_port); mp=$(free_ports 6)
# Production logging (one JSON line per request at the gateway and per operation in the
# service) is part of what is measured; LOG_LEVEL=warn shows the cost without it.
export HTTP_ADDR="127.0.0.1:$hp" NATS_URL="nats://127.0.0.1:$np" DATA_DIR="$work/data" METRICS_ADDR="127.0.0.1:$mp"
export LOG_LEVEL=${LOG_LEVEL:-info} LOG_FORMAT=${LOG_FORMAT:-json}
bin/launcher run >"$work/fleet.log" 2>&1 & pids+=($!)
# The banner comes once /health lists every service the launcher started.
for _ in $(seq 300); do grep -q 'ArtCafe PubSub is running' "$work/fleet.log" && break; sleep 0.2; done
grep -q 'ArtCafe PubSub is running' "$work/fleet.log" || { echo "bench: the fleet did not start:"; tail -50 "$work/fleet.log"; exit 1; }
token=$(bin/launcher token)
tenant=$(curl -fs -X POST "http://$HTTP_ADDR/api/v1/tenants" -H "Authorization: Bearer $token" \
	-H 'Content-Type: application/json' -d '{"name":"bench","admin_email":"bench@example.com"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant_id"])')
# Every bench tenant is on enterprise: a plan's API rate limit (basic: 500/min) would
# otherwise turn the load into 429s.
admin_token=$(bin/launcher token -sub bench-admin -role platform_admin)
curl -fs -o /dev/null -X PUT "http://$HTTP_ADDR/api/v1/tenants/$tenant/plan" -H "Authorization: Bearer $admin_token" \
	-H 'Content-Type: application/json' -d '{"subscription_tier":"enterprise"}'

wrk_line "gateway GET /api/v1/tenants/{id}" -H "Authorization: Bearer $token" "http://$HTTP_ADDR/api/v1/tenants/$tenant"
natsload_line "direct NATS svc.tenant.v1.get" -subject svc.tenant.v1.get \
	-data "{\"tenant_id\":\"$tenant\"}" -H "Artcafe-Principal-Kind: user" -H "Artcafe-Principal-Id: local-user" \
	-H "Artcafe-Tenant-Id: $tenant" -H "Artcafe-Role: owner"

# One agent of the bench tenant (enterprise plan), read through the gateway and directly; the
# direct call carries the identity the gateway would send (tenant, user, role, plan).
agent=$(curl -fs -X POST "http://$HTTP_ADDR/api/v1/agents" -H "Authorization: Bearer $token" -H "x-tenant-id: $tenant" \
	-H 'Content-Type: application/json' -d '{"name":"bench-agent","capabilities":[{"name":"bench"}],"metadata":{"k":"v"}}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["agent"]["id"])')
wrk_line "gateway GET /api/v1/agents/{id}" -H "Authorization: Bearer $token" -H "x-tenant-id: $tenant" \
	"http://$HTTP_ADDR/api/v1/agents/$agent"
agent_rps=$last_rps
natsload_line "direct NATS svc.agent.v1.get" -subject svc.agent.v1.get \
	-data "{\"agent_id\":\"$agent\"}" -H "Artcafe-Principal-Kind: user" -H "Artcafe-Principal-Id: local-user" \
	-H "Artcafe-Tenant-Id: $tenant" -H "Artcafe-Role: owner" -H "Artcafe-Plan: enterprise"

# 6. REST publish into an enterprise tenant's channel with no subscriber.
msg_tenant=$(curl -fs -X POST "http://$HTTP_ADDR/api/v1/tenants" -H "Authorization: Bearer $admin_token" \
	-H 'Content-Type: application/json' -d '{"name":"bench-messages","admin_email":"bench@example.com","subscription_tier":"enterprise"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant_id"])')
channel=$(curl -fs -X POST "http://$HTTP_ADDR/api/v1/channels" -H "Authorization: Bearer $admin_token" -H "x-tenant-id: $msg_tenant" \
	-H 'Content-Type: application/json' -d '{"name":"bench-publish"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["channel"]["id"])')
wrk_line "gateway POST /channels/{id}/messages (200 B)" -s scripts/bench/publish.lua \
	-H "Authorization: Bearer $admin_token" -H "x-tenant-id: $msg_tenant" \
	"http://$HTTP_ADDR/api/v1/channels/$channel/messages"
publish_rps=$last_rps

# 7. Fan-out: each run creates its own channel; latency is publish (REST) → receive (WS).
wsbench_line "ws fan-out 1 -> 10 subs @ 1,000/s" -subs 10 -rate 1000
wsbench_line "ws fan-out 1 -> 10 subs @ max" -subs 10 -rate 0
wsbench_line "ws fan-out 1 -> 100 subs @ 1,000/s" -subs 100 -rate 1000

echo
echo "make bench ($(nproc) cores, wrk -t2 -c$CONNS -d$DURATION; natsload -c$CONNS):"
printf '  %s\n' "${results[@]}"
if [[ -n $ref_rps ]]; then
	awk -v a="$agent_rps" -v r="$ref_rps" 'BEGIN {printf "  GET /api/v1/agents/{id} = %.2f x fiber-nats (target >= 0.6)\n", a / r}'
	awk -v a="$publish_rps" -v r="$ref_rps" 'BEGIN {printf "  POST /channels/{id}/messages = %.2f x fiber-nats (target >= 0.7)\n", a / r}'
fi
