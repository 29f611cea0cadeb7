#!/usr/bin/env bash
# Makes the base images kiln's tests, examples and benchmarks build on, from Debian's packages
# (nothing is pulled from a registry), and `kiln import`s them:
#
#   busybox:latest     Debian's busybox-static and its applet links, /etc/passwd and /etc/group
#                      with root and a non-root user "app" (1000:1000).
#   debian:bookworm    `mmdebstrap --variant=minbase` of bookworm from the apt archive this machine
#                      uses (its apt sources), CMD ["bash"], as the official image.
#   node:18-bookworm   debian:bookworm plus Debian's nodejs (18) and npm, a user node (1000:1000,
#                      /home/node), NODE_VERSION in the env and CMD ["node"], as the official image.
#   node:18-bookworm-slim  the same without npm (a runtime base: Debian's nodejs alone).
#
# The Debian bases trust what this machine trusts: the local CA certificates in
# /usr/local/share/ca-certificates are copied into them (and into /etc/ssl/certs where the base
# has ca-certificates), so RUN steps reach HTTPS services (the npm registry) through this
# machine's network as its own tools do. KILN_BASES_HOST_CA=0 leaves them out.
#
# The Debian bases are deterministic (SOURCE_DATE_EPOCH fixed, mmdebstrap's sorted tar with clamped
# mtimes, no machine-id, no logs) and cached: the rootfs tarball is kept in a cache directory
# ($KILN_BASES_CACHE, default /var/cache/kiln-bases) under a key made of this script, the apt
# sources and the archive's current InRelease files, so a test run makes each base once and a
# new archive state makes it again. Without the archive (offline) the newest cached one is used.
#
# Usage: scripts/make-base-image.sh [NAME:TAG] [--arch amd64|arm64] [--root KILN_ROOT] [--tar-only OUT.tar]
#   --root       the kiln root to import into (default: kiln's default root; $KILN_BIN is the
#                kiln command to import with, default this checkout's bin/kiln.js)
#   --tar-only   write the rootfs tarball to OUT.tar instead of importing it
# Needs busybox-static, and for the Debian bases mmdebstrap, curl and util-linux's flock
# (scripts/setup-host.sh installs them).
set -euo pipefail

name="busybox:latest"
arch=""
tar_only=""
root_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --tar-only) tar_only="$2"; shift 2 ;;
    --root) root_args=(--root "$2"); shift 2 ;;
    -*) echo "make-base-image: unknown option $1" >&2; exit 2 ;;
    *) name="$1"; shift ;;
  esac
done

here="$(cd "$(dirname "$0")/.." && pwd)"
# the kiln that imports: $KILN_BIN (the bench's own copy), else this checkout's
if [ -n "${KILN_BIN:-}" ]; then kiln=("$KILN_BIN"); else kiln=(node "$here/bin/kiln.js"); fi

# ---------------------------------------------------------------------------------------------
# The Debian bases

# Fixed creation time of the Debian bases (and of every file in them): 2023-11-14T22:13:20Z.
debian_epoch=1700000000
suite=bookworm
cache_root="${KILN_BASES_CACHE:-/var/cache/kiln-bases}"

# The apt sources this machine uses, as one file mmdebstrap reads (deb822 .sources or one-line).
host_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$f" ] && [ -s "$f" ] || continue
    grep -qE "^(Suites:.*[[:space:]]$suite([[:space:]]|$)|deb[[:space:]].*[[:space:]]$suite[[:space:]])" "$f" && { echo "$f"; return 0; }
  done
  return 1
}

# The InRelease of every suite those sources name, fetched now: the archive state the key holds.
archive_state() { # archive_state SOURCES ARCH
  local base
  apt-get indextargets -o "Dir::Etc::SourceList=$1" -o Dir::Etc::SourceParts=/dev/null \
      -o "APT::Architecture=$2" --format '$(BASE_URI)' 'Created-By: Packages' 2>/dev/null | sort -u |
    while read -r base; do
      curl -fsS --max-time 30 "${base}InRelease" || return 1
    done
}

# Config of each base, as `kiln import --change` instructions (one per line).
debian_changes() { # debian_changes NAME ROOTFS_TAR
  echo 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  case "$1" in
    debian:*) echo 'CMD ["bash"]' ;;
    node:*)
      local v
      # awk reads to the end: an early exit would kill tar with SIGPIPE (and this, with pipefail)
      v="$(tar -xOf "$2" ./var/lib/dpkg/status | awk '/^Package: nodejs$/{p=1} p&&/^Version:/&&!v{v=$2} END{print v}')"
      [ -n "$v" ] || { echo "make-base-image: no nodejs in $2" >&2; exit 1; }
      v="${v%%[~+-]*}"
      echo "ENV NODE_VERSION=$v"
      echo 'CMD ["node"]'
      ;;
  esac
}

# Removes what a killed maker left in DIR (we hold the lock): any mount first (mmdebstrap's are
# in its own namespace, but never follow one), then the files, never crossing into another file
# system.
remove_leftovers() {
  local d mp
  for d in "$1"/.making.*; do
    [ -d "$d" ] || continue
    findmnt -rn -o TARGET | awk -v p="$d/" 'index($0, p) == 1' | sort -r | while read -r mp; do umount -l "$mp" || true; done
    rm -rf --one-file-system "$d"
  done
}

# Makes (or finds in the cache) the rootfs tarball of $name; sets $entry to its cache entry.
debian_rootfs() {
  command -v mmdebstrap >/dev/null || { echo "make-base-image: mmdebstrap missing: apt-get install mmdebstrap (or run scripts/setup-host.sh)" >&2; exit 1; }
  local deb_arch="${arch:-$(dpkg --print-architecture)}"
  local sources
  sources="$(host_sources)" || { echo "make-base-image: no apt source for $suite in /etc/apt (sources.list or sources.list.d)" >&2; exit 1; }
  local include=()
  case "$name" in
    node:18-bookworm) include=(--include=nodejs,npm,ca-certificates) ;;
    node:18-bookworm-slim) include=(--include=nodejs,ca-certificates) ;;
  esac
  local cas=()
  if [ "${KILN_BASES_HOST_CA:-1}" != 0 ]; then
    mapfile -t cas < <(find /usr/local/share/ca-certificates -maxdepth 1 -type f -name '*.crt' 2>/dev/null | sort)
  fi
  # the inputs: the recipe (this function and the next, without comments: editing this file
  # elsewhere keeps the cache), the sources, the architecture, the local CAs
  local recipe
  recipe="$( { declare -f debian_rootfs remove_leftovers; echo "$debian_epoch $suite $name $deb_arch"; cat "$sources"; [ ${#cas[@]} -eq 0 ] || cat "${cas[@]}"; } | sha256sum | cut -c1-16)"
  local dir="$cache_root/${name/:/-}-$deb_arch/$recipe"
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9 # one maker at a time; a killed maker's lock goes with its process
  local state key=""
  if state="$(archive_state "$sources" "$deb_arch")" && [ -n "$state" ]; then
    key="$(printf '%s' "$state" | sha256sum | cut -c1-16)"
  fi
  if [ -z "$key" ]; then
    # offline: the newest base made from this recipe
    entry="$(ls -1t "$dir"/*/rootfs.tar 2>/dev/null | head -1 || true)"
    [ -n "$entry" ] || { echo "make-base-image: cannot read the Debian archive's InRelease (curl) and no $name is cached in $dir" >&2; exit 1; }
    entry="$(dirname "$entry")"
    echo "make-base-image: archive unreachable; using the cached $name from $entry" >&2
  else
    entry="$dir/$key"
  fi
  if [ ! -f "$entry/rootfs.tar" ]; then
    echo "make-base-image: making $name ($deb_arch) with mmdebstrap from $sources (cached in $entry)" >&2
    local tmp="$dir/.making.$$"
    remove_leftovers "$dir"
    mkdir -p "$tmp/tmp"
    local hooks=(
      # docker's debian images drop downloaded .debs after each install (the file BuildKit's
      # apt cache-mount example removes); ours does the same with its own rules. Without a
      # pkgcache path apt-get clean cannot remove the caches apt-get update made (and they
      # differ from run to run): removed here
      --customize-hook='printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" > "$1/etc/apt/apt.conf.d/docker-clean" && rm -f "$1"/var/cache/apt/*.bin'
      --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id" "$1/etc/hostname" "$1/etc/resolv.conf"'
      # apt leaves its partial dirs to its sandbox user _apt, unless _apt cannot reach them (a
      # cache dir under a 0700 parent): the same owner either way
      --customize-hook='mkdir -p "$1/var/lib/apt/mirrors/partial" && chroot "$1" chown _apt:root /var/cache/apt/archives/partial /var/lib/apt/lists/partial'
    )
    if [ ${#cas[@]} -gt 0 ]; then
      local ca
      hooks+=(--customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"')
      for ca in "${cas[@]}"; do hooks+=(--customize-hook="copy-in $ca /usr/local/share/ca-certificates"); done
      hooks+=(--customize-hook='chmod 0644 "$1"/usr/local/share/ca-certificates/*.crt; if [ -x "$1/usr/sbin/update-ca-certificates" ]; then chroot "$1" update-ca-certificates >/dev/null; fi')
    fi
    if [ "${name%-slim}" = node:18-bookworm ]; then
      hooks+=(--customize-hook='chroot "$1" groupadd --gid 1000 node && chroot "$1" useradd --no-log-init --uid 1000 --gid node --shell /bin/bash --create-home node')
    fi
    # mmdebstrap's own work dir goes under $tmp too, so that a maker killed with -9 leaves
    # nothing the next one does not remove; --mode=unshare: its chroot's mounts (/proc, /sys,
    # /dev) and processes live in namespaces of their own, gone with it however it ends
    TMPDIR="$tmp/tmp" SOURCE_DATE_EPOCH=$debian_epoch mmdebstrap --quiet --variant=minbase --mode=unshare --format=tar \
      --architectures="$deb_arch" "${include[@]}" "${hooks[@]}" \
      "$suite" "$tmp/rootfs.tar" "$sources" >&2
    mkdir -p "$entry"
    mv "$tmp/rootfs.tar" "$entry/rootfs.tar"
    rm -rf --one-file-system "$tmp"
    # keep only this entry of the recipe: an older archive state is not needed again
    find "$dir" -mindepth 1 -maxdepth 1 -type d ! -path "$entry" -exec rm -rf {} +
  fi
  flock -u 9
}

make_debian() {
  debian_rootfs
  # a recipe's directory is touched at each use; other recipes of this base (this script as it
  # was in other checkouts) unused for a week are removed
  touch "$(dirname "$entry")"
  find "$(dirname "$(dirname "$entry")")" -mindepth 1 -maxdepth 1 -type d ! -path "$(dirname "$entry")" -mtime +7 \
    -exec rm -rf --one-file-system {} + 2>/dev/null || true
  if [ -n "$tar_only" ]; then
    cp --reflink=auto "$entry/rootfs.tar" "$tar_only"
    echo "$tar_only"
    exit 0
  fi
  local changes=() line
  while IFS= read -r line; do changes+=(--change "$line"); done < <(debian_changes "$name" "$entry/rootfs.tar")
  local platform_args=()
  [ -n "$arch" ] && platform_args=(--platform "linux/$arch")
  SOURCE_DATE_EPOCH=$debian_epoch "${kiln[@]}" "${root_args[@]}" import "${platform_args[@]}" "${changes[@]}" "$entry/rootfs.tar" "$name"
  exit 0
}
case "$name" in
  debian:bookworm|node:18-bookworm|node:18-bookworm-slim) make_debian ;;
esac
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
"${kiln[@]}" "${root_args[@]}" import "${platform_args[@]}" "$out" "$name"
rm -f "$out"
