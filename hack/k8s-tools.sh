#!/usr/bin/env bash
# Builds the Kubernetes test binaries pinned in hack/k8s-versions.env (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, helm, kwok, plus kwok-stages.yaml, the kwok
# config the test fixture starts kwok with) from the Go module proxy into a cache outside the repo,
# and prints that bin dir as the LAST line of stdout (progress goes to stderr). Idempotent:
# binaries already in the cache are kept, so only a cold cache builds.
#
# Env:
#   JOBQ_CACHE_DIR      cache root (default ~/.cache/jobq); binaries go to $JOBQ_CACHE_DIR/k8s/<key>/bin
#   KUBEBUILDER_ASSETS  if it holds etcd and kube-apiserver, those two are used instead of building them
# Needs: Go >= GO_MIN_VERSION and the Go module proxy. Exit 3 = no usable Go, 1 = build failed.
set -euo pipefail

# Bump when the recipe below changes in a way that changes the binaries (a new cache key).
RECIPE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
versions_file="$here/k8s-versions.env"
# shellcheck source-path=SCRIPTDIR source=k8s-versions.env
source "$versions_file"

log() { printf 'k8s-tools: %s\n' "$*" >&2; }
die() { log "error: $1"; exit "${2:-1}"; }

command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go >= $GO_MIN_VERSION" 3
go_version="$(go env GOVERSION)"
go_version="${go_version#go}"
if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -n1)" != "$GO_MIN_VERSION" ]]; then
  die "Go $go_version is older than $GO_MIN_VERSION (needed by the pinned versions)" 3
fi

# Builds use the local toolchain only (no toolchain downloads), static binaries, no go.work.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
build_flags=(-trimpath)
base_ldflags="-s -w"

key_hash="$( { grep -E '^[A-Z_]+=' "$versions_file"; echo "RECIPE=$RECIPE"; } | sha256sum | cut -c1-12)"
key="$KUBERNETES_VERSION-$key_hash"
cache_dir="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/k8s/$key"
bin_dir="$cache_dir/bin"
src_dir="$cache_dir/src"
mkdir -p "$bin_dir" "$src_dir"

# One build at a time per cache key (parallel test runs would otherwise build twice).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_dir/.lock"
  flock 9
fi
rm -rf "$cache_dir"/out.* "$cache_dir"/stages.*  # left by an interrupted run

# Which binaries come from KUBEBUILDER_ASSETS rather than from a build.
from_assets=()
if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]]; then
  from_assets=(etcd kube-apiserver)
  log "using etcd and kube-apiserver from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
fi

needs() {  # needs NAME: true when NAME must be built (not cached, not taken from KUBEBUILDER_ASSETS)
  local name="$1" a
  for a in "${from_assets[@]}"; do [[ "$a" == "$name" ]] && return 1; done
  [[ ! -x "$bin_dir/$name" ]]
}

module_file() {  # module_file MODULE@VERSION: path of that module's go.mod in the module cache
  (cd "$src_dir" && GOFLAGS='' go mod download -json "$1") | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'
}

install_built() {  # install_built OUT_DIR NAME...: move freshly built binaries into the bin dir
  local out="$1" name
  shift
  for name in "$@"; do
    mv -f "$out/$name" "$bin_dir/$name"
  done
  rm -rf "$out"
  log "built $* ($((SECONDS - started))s so far)"
}

build_kubernetes() {  # build_kubernetes NAME...: cmd/NAME from k8s.io/kubernetes
  local mod="$src_dir/kubernetes" k8s_mod staging out ldflags name p pkgs=() minor
  staging="v0.${KUBERNETES_VERSION#v1.}"  # v1.35.4 -> v0.35.4, the tag of every staging module
  minor="${KUBERNETES_VERSION#v1.}"
  minor="${minor%%.*}"
  mkdir -p "$mod"
  k8s_mod="$(module_file "k8s.io/kubernetes@$KUBERNETES_VERSION")"
  [[ -f "$k8s_mod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging dirs,
  # which a dependency's go.mod cannot do; a helper main module replaces each with its release tag.
  {
    printf 'module jobq.invalid/k8s-tools\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
      "$(sed -n 's/^go //p' "$k8s_mod")" "$KUBERNETES_VERSION"
    sed -n 's|^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*|\1|p' "$k8s_mod" |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
    printf ')\n'
  } >"$mod/go.mod"
  ldflags="$base_ldflags"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  for name in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  out="$(mktemp -d "$cache_dir/out.XXXXXX")"
  log "building $* $KUBERNETES_VERSION from k8s.io/kubernetes (cold Go caches: the go: downloading lines come first, then about 10-15 minutes of compiling on 2 cores)"
  (cd "$mod" && GOFLAGS=-mod=mod go build "${build_flags[@]}" -ldflags "$ldflags" -o "$out/" "${pkgs[@]}") ||
    die "building $* failed"
  install_built "$out" "$@"
}

build_etcd() {
  local mod="$src_dir/etcd" etcd_mod out
  mkdir -p "$mod"
  etcd_mod="$(module_file "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
  [[ -f "$etcd_mod" ]] || die "could not download go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  # etcd's server module replaces its sibling modules with ../ paths, so `go install` refuses it;
  # as a plain dependency those replaces are ignored and the siblings resolve to the same tag.
  printf 'module jobq.invalid/etcd-tools\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$(sed -n 's/^go //p' "$etcd_mod")" "$ETCD_VERSION" >"$mod/go.mod"
  out="$(mktemp -d "$cache_dir/out.XXXXXX")"
  log "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3 (a few minutes)"
  (cd "$mod" && GOFLAGS=-mod=mod go build "${build_flags[@]}" -ldflags "$base_ldflags" -o "$out/etcd" go.etcd.io/etcd/server/v3) ||
    die "building etcd failed"
  install_built "$out" etcd
}

go_install() {  # go_install NAME PACKAGE@VERSION [LDFLAGS]: modules without replace directives
  local name="$1" pkg="$2" ldflags="$base_ldflags ${3:-}" out
  out="$(mktemp -d "$cache_dir/out.XXXXXX")"
  log "building $name ${pkg##*@} from ${pkg%@*} (a few minutes)"
  (cd "$src_dir" && GOFLAGS='' GOBIN="$out" go install "${build_flags[@]}" -ldflags "$ldflags" "$pkg") ||
    die "building $name failed"
  install_built "$out" "$name"
}

write_kwok_stages() {
  # The kwok binary has no built-in behaviour: its Stages (what a Node or Pod goes through) come
  # from config. These are upstream's "fast" stages (nodes Ready at once, pods Running at once) plus
  # the volume stages that provision and bind PVs of StorageClass kwok-volume.
  local dir stages=(node/fast/node-initialize node/heartbeat/node-heartbeat pod/fast/pod-ready
    pod/fast/pod-complete pod/fast/pod-delete volume/fast/pvc-provision volume/fast/pv-bind
    volume/fast/pvc-delete volume/fast/pv-delete) s tmp
  dir="$(cd "$src_dir" && GOFLAGS='' go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$dir/kustomize/stage" ]] || die "could not download sigs.k8s.io/kwok@$KWOK_VERSION"
  tmp="$(mktemp "$cache_dir/stages.XXXXXX")"
  for s in "${stages[@]}"; do
    printf -- '---\n' >>"$tmp"
    cat "$dir/kustomize/stage/$s.yaml" >>"$tmp"
  done
  mv -f "$tmp" "$bin_dir/kwok-stages.yaml"
}

started=$SECONDS
k8s_wanted=()
for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if needs "$name"; then k8s_wanted+=("$name"); fi
done
if ((${#k8s_wanted[@]})) || needs etcd || needs helm || needs kwok; then
  log "first build of the Kubernetes test binaries into $bin_dir: about 20-30 minutes and 3-6 GB of Go caches ($(go env GOMODCACHE), $(go env GOCACHE)) on a cold machine; later runs reuse them"
fi
if ((${#k8s_wanted[@]})); then build_kubernetes "${k8s_wanted[@]}"; fi
if needs etcd; then build_etcd; fi
if needs helm; then
  go_install helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
fi
if needs kwok; then
  go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
fi
if [[ ! -s "$bin_dir/kwok-stages.yaml" ]]; then
  write_kwok_stages
fi
if ((SECONDS - started > 1)); then log "built in $((SECONDS - started))s"; fi

out_dir="$bin_dir"
if ((${#from_assets[@]})); then
  # A separate dir of links, so the version-keyed bin dir never mixes in foreign binaries.
  assets_hash="$(printf '%s' "$(cd "$KUBEBUILDER_ASSETS" && pwd -P)" | sha256sum | cut -c1-12)"
  out_dir="$cache_dir/assets-$assets_hash/bin"
  mkdir -p "$out_dir"
  for name in kube-controller-manager kube-scheduler kubectl helm kwok kwok-stages.yaml; do
    ln -sfn "$bin_dir/$name" "$out_dir/$name"
  done
  for name in "${from_assets[@]}"; do
    ln -sfn "$KUBEBUILDER_ASSETS/$name" "$out_dir/$name"
  done
fi
log "binaries in $out_dir"
echo "$out_dir"
