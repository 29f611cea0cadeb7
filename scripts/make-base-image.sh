#!/usr/bin/env bash
# Makes a small base image from Debian's busybox-static package, for tests and the demo:
# a rootfs tarball with busybox and its applet links, /etc/passwd and /etc/group with
# root and a non-root user "app" (1000:1000), then `kiln import`s it.
#
# Usage: scripts/make-base-image.sh [NAME:TAG] [--arch amd64|arm64] [--tar-only OUT.tar]
# Needs busybox-static (scripts/setup-host.sh installs it). Nothing is pulled from a registry.
set -euo pipefail

name="busybox:latest"
arch=""
tar_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --tar-only) tar_only="$2"; shift 2 ;;
    -*) echo "make-base-image: unknown option $1" >&2; exit 2 ;;
    *) name="$1"; shift ;;
  esac
done

here="$(cd "$(dirname "$0")/.." && pwd)"
busybox_bin="/bin/busybox"
if [ -n "$arch" ] && [ "$arch" != "$(dpkg --print-architecture)" ]; then
  # a foreign busybox: extract it from the Debian package for that architecture
  work_deb="$(mktemp -d)"
  trap 'rm -rf "$work_deb"' EXIT
  (cd "$work_deb" && apt-get download "busybox-static:$arch" >/dev/null 2>&1) || {
    echo "make-base-image: cannot download busybox-static:$arch (dpkg --add-architecture $arch && apt-get update first)" >&2
    exit 1
  }
  dpkg-deb -x "$work_deb"/busybox-static_*.deb "$work_deb/x"
  busybox_bin="$work_deb/x/bin/busybox"
fi
[ -x "$busybox_bin" ] || { echo "make-base-image: $busybox_bin missing: apt-get install busybox-static" >&2; exit 1; }

rootfs="$(mktemp -d)"
cleanup() { rm -rf "$rootfs"; [ -n "${work_deb:-}" ] && rm -rf "$work_deb"; return 0; }
trap cleanup EXIT

mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/app,proc,sys,dev,var/tmp,run}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 0700 "$rootfs/root"
install -m 0755 "$busybox_bin" "$rootfs/bin/busybox"
# applet links, from the host busybox's list (same package, same applets)
/bin/busybox --list-full | while read -r applet; do
  [ "$applet" = "bin/busybox" ] && continue
  mkdir -p "$rootfs/$(dirname "$applet")"
  ln -sf /bin/busybox "$rootfs/$applet"
done
cat > "$rootfs/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
PW
cat > "$rootfs/etc/group" <<'GR'
root:x:0:
nogroup:x:65534:
app:x:1000:
GR
chown 1000:1000 "$rootfs/home/app"
# fixed mtimes so the same package gives the same image digest
find "$rootfs" -exec touch -h -d @0 {} +

out="${tar_only:-$(mktemp --suffix=.tar)}"
tar --numeric-owner --sort=name -C "$rootfs" -cf "$out" .
if [ -n "$tar_only" ]; then
  echo "$out"
  exit 0
fi
platform_args=()
[ -n "$arch" ] && platform_args=(--platform "linux/$arch")
node "$here/bin/kiln.js" import "${platform_args[@]}" "$out" "$name"
rm -f "$out"
