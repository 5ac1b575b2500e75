#!/usr/bin/env bash
# Starts dynalite (a DynamoDB-compatible server, in memory) in the background for tests.
# Prints two lines to eval:
#   DYNAMODB_ENDPOINT=http://127.0.0.1:PORT
#   DYNALITE_PID=PID
# e.g.  eval "$(scripts/dynalite/start.sh)"; ...; kill "$DYNALITE_PID"
# Its log goes to $DYNALITE_LOG (default: a temp file). Everything else goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [ ! -x node_modules/.bin/dynalite ]; then
	echo "dynalite: installing (npm ci)" >&2
	npm ci --no-audit --no-fund >&2
fi

# A free port: ask the kernel for one. Another process could take it before dynalite
# binds, so try a few times.
free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

log="${DYNALITE_LOG:-$(mktemp -t dynalite.XXXXXX.log)}"
for attempt in 1 2 3 4 5; do
	port="$(free_port)"
	# Output to the log only: a caller reading our stdout ($(...)) must not wait for it.
	node_modules/.bin/dynalite --port "$port" --host 127.0.0.1 \
		--createTableMs 0 --deleteTableMs 0 --updateTableMs 0 </dev/null >"$log" 2>&1 &
	pid=$!
	# Wait until it accepts connections (or dies).
	for _ in $(seq 1 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "DYNAMODB_ENDPOINT=http://127.0.0.1:$port"
			echo "DYNALITE_PID=$pid"
			exit 0
		fi
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	echo "dynalite: attempt $attempt on port $port failed; log $log:" >&2
	tail -n 20 "$log" >&2 || true
done
echo "dynalite: could not start" >&2
exit 1
