#!/usr/bin/env bash
# Debian packages the test suite uses, installed when missing and when we can (root + apt-get).
# Where that is impossible, say why and carry on: the tests that need them skip with a reason.
set -u
packages=(dataset-fashion-mnist bubblewrap podman runc debootstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system deps: apt-get not available; not installing ${missing[*]} (tests needing them skip)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system deps: not root; not installing ${missing[*]} (tests needing them skip)"
  exit 0
fi
echo "system deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || echo "system deps: apt-get could not install ${missing[*]} (tests needing them skip)"
fi
exit 0
