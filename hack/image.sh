#!/usr/bin/env bash
# Builds the jobq image from the repo's Dockerfile with no Docker engine (target of `make image`):
# Debian's buildah runs the same Dockerfile `docker build` does. The Dockerfile's default base,
# the official python:3.11-slim, cannot be pulled here, so the build passes a local base image
# as PYTHON_IMAGE: Debian BASE_SUITE (hack/node-versions.env) with python3.11, python3-venv and
# python-is-python3, made once by debootstrap and cached. Inside the build PyPI answers only to
# clients trusting the host's CA bundle, so that bundle is mounted into every RUN step and pip is
# pointed at it by a mounted /etc/pip.conf; neither ends up in the image. PIP_CERT names the bundle
# on the host (default /etc/ssl/certs/ca-certificates.crt).
#
# Usage: hack/image.sh [--tag NAME] [--version V] [--archive FILE] [--push REF]
#   --tag      image name (default localhost/jobq:<version>, the version of hack/version.sh)
#   --version  the image's org.opencontainers.image.version label (default that version)
#   --archive  also write the image as a docker-archive to FILE (for `ctr images import`)
#   --push     also push it to REF (host:port/name:tag; plain HTTP allowed for a loopback
#              registry) and print its digest (sha256:...) before the name
# Prints the image name as the last line of stdout; progress goes to stderr. Exits 4 when the
# image was built but the push failed (the node tier fails on that instead of skipping).
# Needs root on Debian (buildah and debootstrap are apt-get installed when missing).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(bash "$root/hack/version.sh")"
tag=""
archive=""
push=""
while (($#)); do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    *) printf 'usage: %s [--tag NAME] [--version V] [--archive FILE] [--push REF]\n' "$0" >&2; exit 2 ;;
  esac
done

tag="${tag:-localhost/jobq:$version}"

# shellcheck source-path=SCRIPTDIR source=buildah-lib.sh
source "$root/hack/buildah-lib.sh"
ensure_packages buildah debootstrap

# Bump when the base image recipe changes.
BASE_RECIPE=1
base_packages=python3,python3-venv,python-is-python3
base="localhost/jobq-base/python:$BASE_SUITE-$(recipe_key "$BASE_SUITE" "$base_packages" "$DEBIAN_MIRROR" "$BASE_RECIPE")"
rootfs_image "$base" "$BASE_SUITE" "$base_packages" --cmd python

ca_bundle="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
[[ -f "$ca_bundle" ]] || die "no CA bundle at $ca_bundle (set PIP_CERT)"
build_dir="$(mktemp -d)"
trap 'rm -rf "$build_dir"' EXIT
printf '[global]\ncert = /run/jobq-build/ca.pem\n' >"$build_dir/pip.conf"

log "building $tag from Dockerfile on $base"
# The version is also passed as --label: buildah's layer cache (1.28) takes a cached LABEL step
# whatever the build-arg's value, so a second version built from the same source would come out
# carrying the first one's label (and digest); a --label is part of the cache key. The Dockerfile
# puts its labels last, so two versions share every layer and differ only in the image config.
started=$SECONDS
"${BUILDAH[@]}" bud --isolation chroot --network host --pull-never --layers \
  --build-arg "PYTHON_IMAGE=$base" --build-arg "VERSION=$version" \
  --label "org.opencontainers.image.version=$version" \
  --volume "$ca_bundle:/run/jobq-build/ca.pem:ro" \
  --volume "$build_dir/pip.conf:/etc/pip.conf:ro" \
  --file "$root/Dockerfile" --tag "$tag" "$root" >&2 ||
  die "buildah bud failed"
log "built $tag in $((SECONDS - started))s"

if [[ -n "$archive" ]]; then
  mkdir -p "$(dirname "$archive")"
  export_archive "$tag" "$archive"
  log "wrote $archive"
fi
if [[ -n "$push" ]]; then
  digest_file="$build_dir/digest"
  tls_verify=true
  [[ "$push" == 127.0.0.1:* || "$push" == localhost:* ]] && tls_verify=false
  "${BUILDAH[@]}" push --quiet --tls-verify="$tls_verify" --digestfile "$digest_file" \
    "$tag" "docker://$push" >&2 || die "buildah push to $push failed" 4
  log "pushed $push"
  cat "$digest_file"; echo
fi
echo "$tag"
