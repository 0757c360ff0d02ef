#!/usr/bin/env bash
# Fetches Pacemaker's scheduler regression suite (cts/scheduler/{xml,summary,scores,exp,dot})
# from Debian's source package into .cache/pacemaker-cts/ (git-ignored; never committed).
# Uses a private apt configuration with a deb-src entry, so the system's sources stay untouched.
# Prints the directory holding xml/ and summary/ on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="$PWD/.cache/pacemaker-cts"
if [ -d "$cache/scheduler/xml" ] && [ "$(ls "$cache/scheduler/xml" | wc -l)" -gt 100 ]; then
  echo "$cache/scheduler"
  exit 0
fi
work="$PWD/.cache/apt-src"
rm -rf "$work" && mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
src_entry=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)
if [ -n "$src_entry" ]; then
  sed 's/^Types:.*/Types: deb-src/' "$src_entry" > "$work/sources/src.sources"
else
  grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$work/sources/src.list"
fi
opts=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$work/sources"
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1)
apt-get "${opts[@]}" update -qq >&2
(cd "$work/src" && apt-get "${opts[@]}" source --download-only -qq pacemaker >&2)
dsc=$(ls "$work/src"/pacemaker_*.dsc | head -n 1)
(cd "$work/src" && dpkg-source --no-check -x "$dsc" pm >&2)
mkdir -p "$cache"
rm -rf "$cache/scheduler"
cp -r "$work/src/pm/cts/scheduler" "$cache/scheduler"
rm -rf "$work"
echo "$cache/scheduler"
