#!/usr/bin/env bash
# Install the Debian packages the integration tests need.
# Idempotent and silent when everything is already present; runs `apt-get update`
# only when something is missing. Chromium (for HTML report tests) is optional.
set -euo pipefail

required_packages=(docker-registry skopeo umoci apache2-utils zstd pigz curl python3-venv)
optional_packages=(chromium fonts-wqy-microhei)

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing_required=()
for pkg in "${required_packages[@]}"; do
  is_installed "$pkg" || missing_required+=("$pkg")
done
missing_optional=()
for pkg in "${optional_packages[@]}"; do
  is_installed "$pkg" || missing_optional+=("$pkg")
done

if [[ ${#missing_required[@]} -eq 0 && ${#missing_optional[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  sudo_cmd=()
else
  sudo_cmd=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
apt_log=$(mktemp)
trap 'rm -f "$apt_log"' EXIT
# dpkg is chatty even with -qq: keep its output for when something fails.
apt_quiet() {
  if ! "${sudo_cmd[@]}" apt-get "$@" </dev/null >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    return 1
  fi
}
apt_install() {
  apt_quiet install -y -qq --no-install-recommends "$@"
}

echo "system.sh: installing ${missing_required[*]} ${missing_optional[*]}" >&2
apt_quiet update -qq

if [[ ${#missing_required[@]} -gt 0 ]]; then
  apt_install "${missing_required[@]}"
fi
if [[ ${#missing_optional[@]} -gt 0 ]]; then
  # Optional: tests that need these skip themselves when the binary is absent.
  apt_install "${missing_optional[@]}" ||
    echo "system.sh: optional packages unavailable (${missing_optional[*]}); dependent tests will skip" >&2
fi

