#!/usr/bin/env bash
# Prints the path of a Chromium for the console's browser test, installing the Debian
# package `chromium` first when none is found (apt-get, as root or through sudo).
# CHROME_BIN, when set, names the browser to use and is only checked.
# `make test-e2e` runs it and passes the path on as CHROME_BIN. Progress goes to stderr;
# stdout carries only the path.
set -euo pipefail

find_chromium() {
	if [[ -n ${CHROME_BIN:-} ]]; then
		[[ -x $CHROME_BIN ]] && { echo "$CHROME_BIN"; return 0; }
		echo "chromium: CHROME_BIN=$CHROME_BIN is not an executable" >&2
		return 2
	fi
	local c
	for c in chromium chromium-browser google-chrome-stable google-chrome; do
		if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
	done
	return 1
}

rc=0
path=$(find_chromium) || rc=$?
if [[ $rc -eq 0 ]]; then
	echo "$path"
	exit 0
fi
[[ $rc -eq 2 ]] && exit 1

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	as_root=(sudo -n)
else
	echo "chromium: not installed, and installing it needs root or password-less sudo:" >&2
	echo "  apt-get update && apt-get install -y chromium" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "chromium: not installed and no apt-get here; install Chromium and set CHROME_BIN" >&2
	exit 1
fi
echo "chromium: installing the Debian package (apt-get install -y chromium)…" >&2
"${as_root[@]}" apt-get update >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2

path=$(find_chromium) || { echo "chromium: installed, but no chromium binary on PATH" >&2; exit 1; }
echo "$path"
