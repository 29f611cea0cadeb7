#!/usr/bin/env bash
# Installs the host tools kiln and its tests use, from Debian's packages, when missing.
# Idempotent: does nothing when everything is present. Needs root for apt-get.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
want() { # want COMMAND PACKAGE
  have "$1" || need+=("$2")
}
want runc runc
# the sandboxed RUN network (src/exec/network.ts): pasta, else slirp4netns
want pasta passt
want slirp4netns slirp4netns
want busybox busybox-static
want setfattr attr
want skopeo skopeo
want umoci umoci
want docker-registry docker-registry
want dockerd docker.io
want buildah buildah
want openssl openssl
want htpasswd apache2-utils
# test/build/reproducible: the second build runs on a later wall clock
want faketime faketime
# ADD reads bzip2, xz and zstd archives through these decompressors
want bzip2 bzip2
want xz xz-utils
want zstd zstd
# the compress bench's peer (scripts/bench-compress.ts)
want pigz pigz
# the Debian bases (scripts/make-base-image.sh debian:bookworm, node:18-bookworm)
want mmdebstrap mmdebstrap
want curl curl
# ssh mounts and git sources (the tests start their own sshd)
want ssh-agent openssh-client
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
want git git
[ -x /usr/bin/docker ] || need+=(docker.io)
# foreign platforms: QEMU user emulation (kiln setup binfmt registers its handlers)
want qemu-aarch64-static qemu-user-static
# the arm64 test base (scripts/make-base-image.sh --arch arm64 fetches busybox-static:arm64):
# Debian's arm64 packages, with their lists fetched once
if ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    echo "setup-host: adding Debian's arm64 packages (dpkg --add-architecture arm64, apt-get update)" >&2
    apt-get update -qq >/dev/null || echo "setup-host: apt-get update failed: busybox-static:arm64 may not be fetchable" >&2
  else
    echo "setup-host: busybox-static:arm64 is not fetchable and not root: run dpkg --add-architecture arm64 && apt-get update as root" >&2
  fi
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "setup-host: missing ${need[*]} and not root: install them with apt-get, or run as root" >&2
  exit 0
fi
echo "setup-host: installing ${need[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# docker.io and docker-registry are test peers; a failure there must not stop the core tools.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
  echo "setup-host: full install failed; installing the core tools only" >&2
  apt-get install -y -qq --no-install-recommends runc busybox-static attr >/dev/null
}
