#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine with Node 20:
# Debian packages (only those missing), npm dependencies, the native addon, the TypeScript.
# Options: --with-bench also installs python3-torch and python3-pil (PyTorch and PIL's JPEG for `npm run bench`).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libtorch-dev libopenblas0-pthread dataset-fashion-mnist fonts-dejavu-core python3 make g++)
# chromium: the browser tests of `vaeguard serve`'s page (playwright-core drives Debian's build).
packages+=(chromium)
# redis-server: the job queue of distributed evaluation (its tests start their own server on loopback).
packages+=(redis-server)
if [[ "${1:-}" == "--with-bench" ]]; then packages+=(python3-torch python3-pil); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies: `npm ci` only when package-lock.json changed since the last successful install.
lockhash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ "$(cat node_modules/.vaeguard-lock 2>/dev/null)" != "$lockhash" ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lockhash" > node_modules/.vaeguard-lock
fi

# The addon: rebuild when missing or older than its sources.
addon=native/build/Release/vaeguard.node
if [[ ! -f "$addon" ]] || [[ -n "$(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -1)" ]]; then
  echo "setup: building the native addon (about a minute)"
  gypflags=()
  # Build against the running Node's own headers instead of downloading them.
  nodedir=$(node -p "require('path').resolve(process.execPath, '..', '..')")
  if [[ -f "$nodedir/include/node/node_api.h" ]]; then gypflags+=(--nodedir="$nodedir"); fi
  npx node-gyp rebuild --directory native -j 2 "${gypflags[@]}" --loglevel=warn
fi

echo "setup: compiling TypeScript"
npx tsc -p tsconfig.json
echo "setup: bundling the web page of vaeguard serve"
npx tsc -p src/serve/web/tsconfig.json && node scripts/build-web.mjs
node bin/vaeguard.js info >/dev/null
echo "setup: done"
