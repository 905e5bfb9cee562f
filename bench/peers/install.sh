#!/usr/bin/env bash
# Installs the benchmark peers (nats-server, redis-server) from Debian's repos.
# The bench starts its own instances on free ports (bench/peers/peers.ts), so
# the system services the packages may start are not used.
set -euo pipefail

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# Wait for a concurrent apt/dpkg run instead of failing on its lock.
APT=(apt-get -o DPkg::Lock::Timeout=300)

$SUDO "${APT[@]}" update

wanted=(nats-server redis-server)
found=()
for pkg in "${wanted[@]}"; do
  # A package the configured repos do not carry has no candidate ("(none)").
  candidate=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
    found+=("$pkg")
  else
    echo "install.sh: $pkg is not in this machine's apt repositories; the bench will report it as skipped." >&2
  fi
done

if [ "${#found[@]}" -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${found[@]}"
fi

for bin in nats-server redis-server; do
  if command -v "$bin" >/dev/null; then echo "install.sh: $bin -> $(command -v "$bin")"; fi
done
