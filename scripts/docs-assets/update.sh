#!/usr/bin/env bash
# Copies the pinned Swagger UI assets (package-lock.json) into the gateway's embedded docs
# folder. The copies are committed, so a machine with only Go builds the gateway; run this
# again only after changing the version in package.json (then `npm install` to refresh the lock).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/../../gateway/internal/httpapi/docs/assets"

cd "$here"
npm ci --no-audit --no-fund --ignore-scripts
src="$here/node_modules/swagger-ui-dist"

mkdir -p "$dest"
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE; do
	cp "$src/$f" "$dest/$f"
done
version="$(node -p "require('$src/package.json').version")"
printf '%s\n' "$version" >"$dest/VERSION"
echo "swagger-ui-dist $version copied to $dest"
