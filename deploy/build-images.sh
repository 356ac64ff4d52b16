#!/usr/bin/env bash
# Builds the quorumkv node image on a machine that may have no image registry.
#
#   deploy/build-images.sh            # base image if missing, workspace build, node image
#   QKV_IMAGE=quorumkv/node:1.2 deploy/build-images.sh
#
# 1. When no `node:20-bookworm-slim` image exists locally, it makes one with `docker import` from
#    this machine's own Node binary, its shared libraries and a static busybox (about 95 MB). With
#    a registry you can `docker pull node:20-bookworm-slim` first and this step is skipped.
# 2. Builds the workspace on the host (`pnpm build`) and copies the server with its production
#    dependencies into a temporary build context (`pnpm deploy --prod`): npm inside a container
#    may not reach the registry, and this keeps the image small and quick to rebuild.
# 3. Builds deploy/Dockerfile with the classic builder (no BuildKit, no pulls).
# 4. Creates deploy/cluster.env with a random cluster secret and the TLS settings when it does
#    not exist yet, and development certificates in deploy/tls/<id>/ (`quorumkv certs init`, which
#    runs openssl) when deploy/tls does not exist yet. For production, put your own files there.
#
# Idempotent: run it again after changing the code. Environment:
#   QKV_IMAGE       tag of the node image (default quorumkv/node:local)
#   QKV_BASE_IMAGE  tag of the base image (default node:20-bookworm-slim)
#   QKV_SKIP_BUILD  1 = do not run `pnpm build` (the dist/ folders are already fresh)
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEPLOY_DIR/.." && pwd)"
IMAGE="${QKV_IMAGE:-quorumkv/node:local}"
BASE_IMAGE="${QKV_BASE_IMAGE:-node:20-bookworm-slim}"
export DOCKER_BUILDKIT=0

say() { printf '== %s\n' "$*"; }
die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }

WORK_DIR=""
cleanup() { if [[ -n "$WORK_DIR" ]]; then rm -rf "$WORK_DIR"; fi; }
trap cleanup EXIT

check_tools() {
  command -v docker >/dev/null 2>&1 || die "the docker client is not installed (apt-get install -y docker.io)"
  docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (start dockerd, or see .ci/docker.sh)"
  command -v pnpm >/dev/null 2>&1 || die "pnpm is not installed (npm i -g pnpm@10)"
  command -v node >/dev/null 2>&1 || die "node is not installed"
}

# Copies one file (following symlinks) to the same path under $1.
copy_into() {
  local root="$1" file="$2"
  mkdir -p "$root$(dirname "$file")"
  cp -L "$file" "$root$file"
}

# A minimal image tagged like the official one: the host's node + its libraries + busybox.
make_base_image() {
  local node_bin busybox_bin root lib applet
  node_bin="$(command -v node)"
  busybox_bin="$(command -v busybox || true)"
  if [[ -z "$busybox_bin" ]] || ! file_is_static "$busybox_bin"; then
    if [[ -x /bin/busybox ]] && file_is_static /bin/busybox; then busybox_bin=/bin/busybox
    else die "a static busybox is needed for the base image: apt-get install -y busybox-static"; fi
  fi
  say "making base image $BASE_IMAGE from $node_bin ($(node -v)) and $busybox_bin"
  root="$WORK_DIR/rootfs"
  mkdir -p "$root"/{bin,usr/local/bin,etc,tmp,root,home/node}
  chmod 1777 "$root/tmp"
  cp -L "$node_bin" "$root/usr/local/bin/node"
  for lib in $(ldd "$node_bin" | grep -o '/[^ ]*' | sort -u); do copy_into "$root" "$lib"; done
  cp "$busybox_bin" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  chown -R 1000:1000 "$root/home/node"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$(node -v | tr -d v)" \
    --change 'CMD ["node"]' \
    - "$BASE_IMAGE" >/dev/null
}

# True when the binary needs no dynamic loader (so it runs in the bare image).
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

ensure_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE is present"
    return
  fi
  local t0=$SECONDS
  make_base_image
  say "base image $BASE_IMAGE made in $((SECONDS - t0)) s"
}

# The build context: the deployed server package plus the health check script.
prepare_context() {
  local ctx="$WORK_DIR/context" arch
  if [[ "${QKV_SKIP_BUILD:-0}" != 1 ]]; then
    say "building the workspace (pnpm build)"
    (cd "$REPO_ROOT" && pnpm --silent build)
  fi
  [[ -f "$REPO_ROOT/packages/server/dist/cli.js" ]] || die "packages/server/dist/cli.js is missing: run pnpm build"
  say "copying the server and its production dependencies (pnpm deploy --prod)"
  mkdir -p "$ctx"
  (cd "$REPO_ROOT" && pnpm --silent --filter @quorumkv/server deploy --legacy --prod "$ctx/app" >/dev/null)
  # Native prebuilds for other platforms are dead weight in a Linux image.
  arch="$(node -p 'process.arch')"
  find "$ctx/app/node_modules" -type d -name prebuilds -prune -print | while read -r dir; do
    find "$dir" -mindepth 1 -maxdepth 1 -type d ! -name "linux-$arch*" -exec rm -rf {} +
  done
  cp "$DEPLOY_DIR/healthcheck.mjs" "$ctx/healthcheck.mjs"
  cp "$DEPLOY_DIR/Dockerfile" "$ctx/Dockerfile"
}

build_image() {
  local t0=$SECONDS size
  say "building $IMAGE (classic builder)"
  local out
  # The classic builder prints a deprecation notice on every build: show its output only on failure.
  if ! out="$(docker build --quiet -t "$IMAGE" "$WORK_DIR/context" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "docker build failed"
  fi
  # The image this build replaced is now untagged: remove it (and only images of this Dockerfile).
  docker image prune -f --filter label=org.opencontainers.image.title=quorumkv-node >/dev/null || true
  size="$(docker image inspect "$IMAGE" --format '{{.Size}}')"
  say "image $IMAGE built in $((SECONDS - t0)) s, $((size / 1000000)) MB"
}

ensure_env_file() {
  local env_file="$DEPLOY_DIR/cluster.env"
  if [[ -f "$env_file" ]]; then
    say "deploy/cluster.env exists (secret kept)"
    return
  fi
  umask 077
  printf '# The cluster secret shared by the three nodes (made by deploy/build-images.sh).\nQKV_CLUSTER_SECRET=%s\n' \
    "$(node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("hex"))')" >"$env_file"
  cat >>"$env_file" <<'TLS'
# TLS on every link (docs/security.md): each node mounts deploy/tls/<id> at /tls.
QKV_CERT_FILE=/tls/node.crt
QKV_KEY_FILE=/tls/node.key
QKV_PEER_CERT_FILE=/tls/node.crt
QKV_PEER_KEY_FILE=/tls/node.key
QKV_PEER_TRUSTED_CA_FILE=/tls/ca.crt
QKV_TRUSTED_CA_FILE=/tls/ca.crt
TLS
  say "wrote deploy/cluster.env with a new random cluster secret and TLS on"
}

# Development certificates for n1..n3, one directory per node as the compose file mounts them.
ensure_tls_dir() {
  local tls_dir="$DEPLOY_DIR/tls" id
  if [[ -d "$tls_dir" ]]; then
    say "deploy/tls exists (certificates kept)"
    return
  fi
  if ! node "$REPO_ROOT/packages/server/dist/cli.js" certs init --nodes n1,n2,n3 --out "$tls_dir" >/dev/null; then
    rm -rf "$tls_dir"
    say "WARNING: no development certificates (is openssl installed?): the compose cluster will not start with TLS until deploy/tls/<id>/ holds them"
    return
  fi
  for id in n1 n2 n3; do
    mkdir -p "$tls_dir/$id"
    cp "$tls_dir/$id.crt" "$tls_dir/$id/node.crt"
    cp "$tls_dir/$id.key" "$tls_dir/$id/node.key"
    cp "$tls_dir/ca.crt" "$tls_dir/$id/ca.crt"
  done
  # The container runs as uid 1000 (node): it must read its files (development keys only).
  chmod 0755 "$tls_dir"/n1 "$tls_dir"/n2 "$tls_dir"/n3
  chmod 0644 "$tls_dir"/n?/*
  say "made development certificates in deploy/tls (CA: deploy/tls/ca.crt, client: deploy/tls/client.crt)"
}

main() {
  local t0=$SECONDS
  check_tools
  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/qkv-image.XXXXXX")"
  ensure_base_image
  prepare_context
  build_image
  ensure_env_file
  ensure_tls_dir
  say "done in $((SECONDS - t0)) s; start a cluster with: docker-compose -f deploy/docker-compose.yml up -d"
}

main "$@"
