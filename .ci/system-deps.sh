#!/usr/bin/env bash
# System packages some tests need. Each step is skipped when already present; none is fatal,
# because the tests that need them say clearly why they skip.
set -uo pipefail
apt_updated=0
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then echo "   (not root: cannot apt-get install $*)"; return 1; fi
  if [[ $apt_updated -eq 0 ]]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

# Headless Chromium renders the jepsen-lite report and the status page (test/cluster/status-page.test.ts,
# which fails under CI=true without it) in their tests.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (jepsen-lite report test)"
  apt_install chromium || echo "   chromium could not be installed; the report-rendering test will skip"
fi

# promtool (Debian ships it in the prometheus package) checks /metrics in test/cluster/health.test.ts,
# and the alert rules in packages/server/test/alerts.test.ts; both fail under CI=true when promtool is
# missing and skip with a message elsewhere.
if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing prometheus (promtool: the metrics-conventions test)"
  apt_install prometheus || echo "   prometheus could not be installed; the promtool test fails under CI=true"
fi
# openssl makes the development TLS certificates (`quorumkv certs init`) that test/cluster/tls.test.ts,
# packages/server/test/tls-config.test.ts and deploy/build-images.sh use.
if ! command -v openssl >/dev/null 2>&1; then
  echo "== installing openssl (TLS certificates for the tests)"
  apt_install openssl || echo "   openssl could not be installed; the TLS tests fail"
fi
# The forgetting filesystem (tools/forgetfs: power loss, torn writes, slow fsync, EIO/ENOSPC for
# jepsen-lite/test/forgetfs.test.ts and the power-loss/corrupt nemeses) is built from the repository
# with libfuse3; fusermount3 mounts it. Its tests fail under CI=true when it cannot be built.
if ! pkg-config --exists fuse3 2>/dev/null || ! command -v fusermount3 >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  echo "== installing libfuse3-dev fuse3 gcc make pkg-config (forgetfs)"
  apt_install libfuse3-dev fuse3 gcc make pkg-config || echo "   libfuse3 could not be installed; the forgetfs tests fail under CI=true"
fi
if make -s -C tools/forgetfs >/dev/null 2>&1; then echo "== forgetfs built"; else echo "   forgetfs did not build"; fi
exit 0
