#!/usr/bin/env bash
# Install the Debian packages the benchmarks need: a JDK and Maven (real files for the
# fleet), Go (bench/gogzip), skopeo and docker-registry (peers and registries), GNU time
# (peak RSS) and curl (the ingest floor). Does nothing when all are present.
set -euo pipefail

packages=(openjdk-17-jdk-headless maven skopeo docker-registry time curl)
command -v go >/dev/null || packages+=(golang-go)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo -n)
echo "bench/system.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
