#!/usr/bin/env bash
# The headless browser the console's tests and the demo's screenshot drive: Debian's
# chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Idempotent;
# installs them from Debian's packages when missing and running as root.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "browser: installing chromium and chromium-driver from Debian's packages ..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  echo "browser: $(chromium --version 2>/dev/null | head -1)"
else
  echo "chromium and chromedriver not found. Install them (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)," >&2
  echo "or set SLUICEGATE_CHROMIUM and SLUICEGATE_CHROMEDRIVER to their paths." >&2
  exit 1
fi
