#!/usr/bin/env bash
# Installs the Debian packages the suite needs, only those missing, so a second run costs nothing.
#   setup-system.sh run   what the GUI needs (Qt's system libraries)
#   setup-system.sh test  plus what the tests need (openssh-server, iproute2, xvfb, desktop-file-utils)
set -euo pipefail
what=${1:-run}
need=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
      libxcb-render-util0 libxcb-image0 fonts-dejavu-core python3-venv)
if [ "$what" = test ]; then
    need+=(openssh-server openssh-client iproute2 util-linux procps xvfb xauth desktop-file-utils
           systemd python3 python3-psutil)
fi
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup-system: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$what" = test ] && [ "$(id -u)" -eq 0 ]; then
    bash "$(dirname "$0")/provision-criu.sh" || echo "setup-system: CRIU could not be provisioned; migration tests will say why" >&2
fi
