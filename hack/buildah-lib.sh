# Shared by hack/image.sh and hack/test-images.sh (sourced, not run): daemonless image builds
# with Debian's buildah, its storage in a cache outside the repo, and base images made by
# debootstrap, since no public image registry can be reached from these machines.
#
# Env: JOBQ_CACHE_DIR  cache root (default ~/.cache/jobq); images live in $JOBQ_CACHE_DIR/images
# shellcheck shell=bash

lib_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=node-versions.env
source "$lib_here/node-versions.env"

images_cache="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/images"
mkdir -p "$images_cache"
BUILDAH=(buildah --root "$images_cache/storage" --runroot "$images_cache/run" --storage-driver overlay)

log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "error: $1"; exit "${2:-1}"; }

# ensure_packages PACKAGE...: apt-get install the Debian packages that are missing (root only).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null || die "needs Debian packages ${missing[*]} (run as root on Debian)" 3
  log "installing ${missing[*]} (apt-get)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed" 3
}

image_exists() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# recipe_key TEXT...: 12 hex digits naming a cached image after everything that makes it.
recipe_key() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }

# rootfs_image NAME SUITE PACKAGES [CONFIG...]: a Debian SUITE (minbase plus the comma-separated
# PACKAGES) committed as image NAME; CONFIG are extra `buildah config` flags. Kept if it exists.
rootfs_image() {
  local name="$1" suite="$2" packages="$3" rootfs ctr mnt
  shift 3
  image_exists "$name" && return 0
  rootfs="$(mktemp -d "$images_cache/rootfs.XXXXXX")"
  log "debootstrap $suite with $packages (cold: about 2 minutes)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$DEBIAN_MIRROR" \
    >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; rm -rf "$rootfs"; die "debootstrap $suite failed"; }
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/* "$rootfs.log"
  ctr="$("${BUILDAH[@]}" from scratch)"
  mnt="$("${BUILDAH[@]}" mount "$ctr")"
  cp -a "$rootfs"/. "$mnt"/
  rm -rf "$rootfs"
  "${BUILDAH[@]}" umount "$ctr" >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label "org.opencontainers.image.base.name=debian:$suite" "$@" "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
  log "committed $name"
}

# export_archive NAME FILE: the image as a docker-archive, what `ctr images import` reads.
export_archive() {
  local tmp="$2.tmp.$$"
  rm -f "$tmp"
  "${BUILDAH[@]}" push --quiet "$1" "docker-archive:$tmp:$1" >/dev/null
  mv -f "$tmp" "$2"
}

# One build at a time over the shared storage.
exec 8>"$images_cache/.lock"
flock 8
