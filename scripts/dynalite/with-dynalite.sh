#!/usr/bin/env bash
# Runs CMD... with a fresh dynalite: DYNAMODB_ENDPOINT is exported to CMD, dynalite is
# stopped afterwards (also on failure or Ctrl-C), and CMD's exit code is returned.
#   scripts/dynalite/with-dynalite.sh sh -c 'cd services/kit && go test -race ./store/...'
set -euo pipefail

if [ "$#" -eq 0 ]; then
	echo "usage: $0 CMD [ARG...]" >&2
	exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DYNALITE_LOG="$(mktemp -t dynalite.XXXXXX.log)"
export DYNALITE_LOG
if ! env_lines="$("$here/start.sh")"; then
	rm -f "$DYNALITE_LOG"
	exit 1
fi
DYNAMODB_ENDPOINT="$(printf '%s\n' "$env_lines" | sed -n 's/^DYNAMODB_ENDPOINT=//p')"
DYNALITE_PID="$(printf '%s\n' "$env_lines" | sed -n 's/^DYNALITE_PID=//p')"
export DYNAMODB_ENDPOINT

stop() {
	kill "$DYNALITE_PID" 2>/dev/null || true
	# Wait for it to go, without waiting forever.
	for _ in $(seq 1 50); do
		kill -0 "$DYNALITE_PID" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "dynalite: still running after SIGTERM; killing it" >&2
	kill -9 "$DYNALITE_PID" 2>/dev/null || true
}
cleanup() {
	stop
	rm -f "$DYNALITE_LOG"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "dynalite: $DYNAMODB_ENDPOINT (pid $DYNALITE_PID)" >&2
set +e
"$@"
code=$?
set -e
exit "$code"
