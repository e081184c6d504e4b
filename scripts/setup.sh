#!/usr/bin/env bash
# Sets up everything berth needs on a fresh Debian machine, as root: the Debian
# packages the tests and the main job use, the npm dependencies, and the build.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  containerd            # ctr 1.6 (wire-compatibility proof) and the benchmark peer
  runc                  # the OCI runtime
  protobuf-compiler     # protoc for offline code generation of proto/
  docker-registry       # a real OCI registry on 127.0.0.1 for tests
  busybox-static        # a rootfs for test images
  skopeo umoci          # building and inspecting fixture images
  containernetworking-plugins
  iproute2 procps psmisc util-linux
  build-essential python3  # node-gyp builds better-sqlite3 from source here
  golang-github-opencontainers-specs-dev  # the OCI runtime spec JSON schema our generated specs are checked against
)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh must run as root (it installs Debian packages and the tests need mounts)" >&2
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci wipes node_modules and rebuilds native addons; only do it when the lock
# file changed since the last successful install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.berth-installed
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi

log "building"
npm run --silent build

# The main job's image, made offline from busybox-static (cached in .cache/).
log "demo image: $(node scripts/demo-image.js)"
log "ready"
