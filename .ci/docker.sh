#!/usr/bin/env bash
# Docker for the tests in test/docker: installs the engine when it is missing, starts dockerd
# when it is not running, and builds the images (deploy/build-images.sh). Idempotent: each step
# is skipped when already done. Run it after `pnpm install` (the image build needs the workspace).
#
# Exit status: 0 when the engine is up and the images are built; 1 otherwise, with the reason
# on the last line. The caller decides whether that is fatal (CI: it is; set
# QKV_REQUIRE_DOCKER=1 for the tests so they fail instead of skipping).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
DOCKERD_LOG="${QKV_DOCKERD_LOG:-/tmp/qkv-dockerd.log}"
ENGINE_WAIT_S=30

say() { printf '== docker: %s\n' "$*"; }
fail() { printf '== docker: FAILED: %s\n' "$*" >&2; exit 1; }

install_engine() {
  local missing=()
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  # A static busybox goes into the locally made base image (deploy/build-images.sh).
  [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "engine present ($(docker --version 2>/dev/null | head -1); $(docker-compose version --short 2>/dev/null))"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || fail "not root: cannot apt-get install ${missing[*]}"
  say "installing $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')(apt-get)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u) >/tmp/qkv-apt-docker.log 2>&1 \
    || fail "apt-get install failed; see /tmp/qkv-apt-docker.log"
}

start_engine() {
  if docker info >/dev/null 2>&1; then
    say "engine running (server $(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || fail "the engine is not running and only root can start dockerd here"
  say "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: dockerd outlives this script and the CI step that ran it.
  setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  for ((i = 0; i < ENGINE_WAIT_S * 4; i++)); do
    if docker info >/dev/null 2>&1; then
      say "engine up after $(((i + 1) * 250)) ms (server $(docker info --format '{{.ServerVersion}}'))"
      return 0
    fi
    sleep 0.25
  done
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  fail "dockerd did not answer within ${ENGINE_WAIT_S} s"
}

install_engine
start_engine
bash deploy/build-images.sh || fail "deploy/build-images.sh failed"
say "ready in $((SECONDS - started)) s"
