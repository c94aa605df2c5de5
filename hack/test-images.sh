#!/usr/bin/env bash
# Builds the two images the real test node needs besides jobq's, since no registry can be
# reached to pull them, and writes each as a docker-archive for `ctr images import`:
#   pause   the pod sandbox image: kubernetes' own pause.c from the pinned k8s.io/kubernetes
#           module (KUBERNETES_VERSION, hack/k8s-versions.env), compiled static, on scratch;
#   valkey  the chart's Redis: Debian VALKEY_SUITE's valkey-server and valkey-cli packages
#           (hack/node-versions.env), entrypoint valkey-server with protected mode off, as the
#           official valkey/valkey image has it, so the chart's args and probes run unchanged.
#   prometheus       Prometheus (PROMETHEUS_VERSION) for the Prometheus Operator's pods, and
#   config-reloader  its prometheus-config-reloader, both built by hack/node-tools.sh, on scratch.
# Prints five lines on stdout: `WHAT NAME ARCHIVE` for each of the four, then the archive dir.
# Cached by version in $JOBQ_CACHE_DIR/images (default ~/.cache/jobq). Needs root on Debian, gcc.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=k8s-versions.env
source "$here/k8s-versions.env"
# shellcheck source-path=SCRIPTDIR source=buildah-lib.sh
source "$here/buildah-lib.sh"
ensure_packages buildah debootstrap

# Bump when a recipe below changes.
RECIPE=1
archives="$images_cache/archives"
mkdir -p "$archives"

# --- pause ---
k8s_dir="$(cd "$images_cache" && GOFLAGS='' GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
pause_src="$k8s_dir/build/pause/linux/pause.c"
[[ -f "$pause_src" ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$KUBERNETES_VERSION"
pause_version="$(sed -n 's/^TAG ?= //p' "$k8s_dir/build/pause/Makefile")"
pause="localhost/jobq-test/pause:$pause_version-$(recipe_key "$KUBERNETES_VERSION" "$RECIPE")"
if ! image_exists "$pause"; then
  command -v gcc >/dev/null || die "gcc is needed to compile pause.c"
  work="$(mktemp -d "$images_cache/pause.XXXXXX")"
  gcc -Os -Wall -Werror -static -DVERSION="v$pause_version-jobq" -o "$work/pause" "$pause_src"
  strip "$work/pause"
  ctr="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" copy "$ctr" "$work/pause" /pause >/dev/null
  "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$pause" >/dev/null
  rm -rf "$work"
  log "committed $pause"
fi

# --- valkey ---
valkey="localhost/jobq-test/valkey:$VALKEY_SUITE-$(recipe_key "$VALKEY_SUITE" "$DEBIAN_MIRROR" "$RECIPE")"
rootfs_image "$valkey" "$VALKEY_SUITE" valkey-server,valkey-tools \
  --entrypoint '["valkey-server", "--protected-mode", "no"]' --workingdir /data --port 6379

# --- prometheus, config-reloader (the Prometheus Operator's pods), built by hack/node-tools.sh ---
binary_image() {  # binary_image NAME BINARY PATH [CONFIG...]: one static binary on scratch
  local name="$1" binary="$2" path="$3" ctr
  shift 3
  image_exists "$name" && return 0
  ctr="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" copy "$ctr" "$binary" "$path" >/dev/null
  "${BUILDAH[@]}" config --entrypoint "[\"$path\"]" --user 65534:65534 "$@" "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
  log "committed $name"
}
prometheus="localhost/jobq-test/prometheus:v$PROMETHEUS_RELEASE-$(recipe_key "$PROMETHEUS_VERSION" "$RECIPE")"
reloader="localhost/jobq-test/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION-$(recipe_key "$RECIPE")"
if ! image_exists "$prometheus" || ! image_exists "$reloader"; then
  node_bin="$(bash "$here/node-tools.sh" | tail -n 1)"
  binary_image "$prometheus" "$(readlink -f "$node_bin/prometheus")" /bin/prometheus \
    --workingdir /prometheus --port 9090
  binary_image "$reloader" "$(readlink -f "$node_bin/prometheus-config-reloader")" \
    /bin/prometheus-config-reloader
fi

for pair in "pause $pause" "valkey $valkey" "prometheus $prometheus" "config-reloader $reloader"; do
  read -r what name <<<"$pair"
  file="$archives/${name//[\/:]/_}.tar"
  [[ -s "$file" ]] || export_archive "$name" "$file"
  echo "$what $name $file"
done
echo "$archives"
