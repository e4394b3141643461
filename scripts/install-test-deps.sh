#!/usr/bin/env bash
# Installs what the tests need beyond npm packages, when missing: Debian's Chromium (Playwright
# drives it; no browser download), Xvfb for the desktop window, fonts, Fashion-MNIST, and the Vulkan
# loader (libvulkan1) through which Dawn reaches chromium's SwiftShader for the webgpu tests.
set -euo pipefail
packages=(chromium xvfb xauth fonts-liberation fonts-dejavu-core dataset-fashion-mnist libvulkan1)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "test dependencies present: ${packages[*]}"
