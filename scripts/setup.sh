#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine with Node 20 lacks to build, test and run halo:
# npm packages, and the Debian packages whose real tools the tests drive (resource and fence
# agents, Pacemaker's CLI for conformance checks, NBD/FUSE tools for volumes, nginx and Apache
# for the lab's web services, MariaDB for seed-003's database, curl for the apache agent's monitor).
# Safe to run again: apt and npm skip what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  iproute2 iputils-ping iputils-arping procps psmisc util-linux e2fsprogs kmod
  resource-agents fence-agents nginx apache2-bin curl mariadb-server
  pacemaker-cli-utils crmsh
  libnbd-bin nbdkit fuse3 qemu-utils
  dpkg-dev
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx's and pacemaker's packages start services on install; we only want the binaries.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Not `npm ci`: npm 11 leaves other platforms' optional Biome binaries out of the lock file and
  # then `npm ci` refuses it as out of sync. `npm install` follows the lock file all the same.
  npm install --no-audit --no-fund
fi
npm run build
# Git stores files as 0644; Heartbeat (and halo) refuse an authkeys file others can read.
chmod 600 examples/*/authkeys
echo "setup: done"
