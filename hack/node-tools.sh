#!/usr/bin/env bash
# Builds the binaries of the real test node from the Go module proxy into a cache outside the
# repo: kubelet and kube-proxy from the control plane's pinned k8s.io/kubernetes
# (KUBERNETES_VERSION in hack/k8s-versions.env), CoreDNS, Traefik and the Prometheus Operator
# (with its config reloader) from hack/node-versions.env.
# Prints that bin dir as the LAST line of stdout (progress goes to stderr). Idempotent, and keyed
# apart from hack/k8s-tools.sh's cache, so adding or bumping a node binary never rebuilds those.
#
# Env: JOBQ_CACHE_DIR  cache root (default ~/.cache/jobq); binaries go to $JOBQ_CACHE_DIR/node/<key>/bin
# Needs Go >= GO_MIN_VERSION (hack/k8s-versions.env). Exit 3 = no usable Go, 1 = build failed.
set -euo pipefail

# Bump when the recipe below changes in a way that changes the binaries (a new cache key).
RECIPE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=k8s-versions.env
source "$here/k8s-versions.env"
# shellcheck source-path=SCRIPTDIR source=node-versions.env
source "$here/node-versions.env"

log() { printf 'node-tools: %s\n' "$*" >&2; }
die() { log "error: $1"; exit "${2:-1}"; }

command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go >= $GO_MIN_VERSION" 3
go_version="$(go env GOVERSION)"
go_version="${go_version#go}"
if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -n1)" != "$GO_MIN_VERSION" ]]; then
  die "Go $go_version is older than $GO_MIN_VERSION (needed by the pinned versions)" 3
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
base_ldflags="-s -w"

key_hash="$(printf '%s\n' "KUBERNETES_VERSION=$KUBERNETES_VERSION" "COREDNS_VERSION=$COREDNS_VERSION" \
  "TRAEFIK_VERSION=$TRAEFIK_VERSION" "RECIPE=$RECIPE" | sha256sum | cut -c1-12)"
cache_dir="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/node/$KUBERNETES_VERSION-$key_hash"
bin_dir="$cache_dir/bin"
src_dir="$cache_dir/src"
mkdir -p "$bin_dir" "$src_dir"
exec 9>"$cache_dir/.lock"
flock 9
rm -rf "$cache_dir"/out.*  # left by an interrupted run

module_file() {  # module_file MODULE@VERSION FIELD: GoMod or Dir of that module in the module cache
  (cd "$src_dir" && GOFLAGS='' go mod download -json "$1") | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"
}

# helper_module DIR MODULE VERSION GOMOD: a main module in DIR requiring MODULE@VERSION with the
# replace directives of its go.mod that point at other modules (a dependency's replaces are
# ignored, a main module's are not). Directives pointing at ./ paths are left to the caller.
helper_module() {
  local dir="$1" module="$2" version="$3" gomod="$4"
  mkdir -p "$dir"
  {
    printf 'module jobq.invalid/node-tools\n\ngo %s\n\nrequire %s %s\n\n' \
      "$(sed -n 's/^go //p' "$gomod")" "$module" "$version"
    # Both forms: `replace a => b v` lines and the lines of a `replace ( ... )` block.
    awk '/^replace \(/{b=1; next} b&&/^\)/{b=0; next}
         b&&/=>/&&$0!~/=> *\.\.?\//{print "replace " $0}
         /^replace [^(]/&&$0!~/=> *\.\.?\//{print}' "$gomod"
  } >"$dir/go.mod"
}

install_built() {  # install_built OUT_DIR NAME...
  local out="$1" name
  shift
  for name in "$@"; do mv -f "$out/$name" "$bin_dir/$name"; done
  rm -rf "$out"
}

build_kubernetes() {  # build_kubernetes NAME...: cmd/NAME from k8s.io/kubernetes (as hack/k8s-tools.sh)
  local mod="$src_dir/kubernetes" k8s_mod staging out ldflags name p pkgs=() minor
  staging="v0.${KUBERNETES_VERSION#v1.}"
  minor="${KUBERNETES_VERSION#v1.}"
  minor="${minor%%.*}"
  mkdir -p "$mod"
  k8s_mod="$(module_file "k8s.io/kubernetes@$KUBERNETES_VERSION" GoMod)"
  [[ -f "$k8s_mod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  {
    printf 'module jobq.invalid/node-tools\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
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
  log "building $* $KUBERNETES_VERSION (a few minutes once the control plane's build is cached)"
  (cd "$mod" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}") ||
    die "building $* failed"
  install_built "$out" "$@"
}

build_module() {  # build_module NAME MODULE VERSION PACKAGE LDFLAGS [TAGS]
  local name="$1" module="$2" version="$3" pkg="$4" ldflags="$base_ldflags $5" tags="${6:-}" gomod mod out
  gomod="$(module_file "$module@$version" GoMod)"
  [[ -f "$gomod" ]] || die "could not download $module@$version"
  mod="$src_dir/$name"
  helper_module "$mod" "$module" "$version" "$gomod"
  out="$(mktemp -d "$cache_dir/out.XXXXXX")"
  log "building $name $version"
  (cd "$mod" && GOFLAGS=-mod=mod go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out/$name" "$pkg") ||
    die "building $name failed"
  install_built "$out" "$name"
}

# The node's Debian packages (the tier runs as root; elsewhere it skips, so only say what is missing),
# and the OCI registry the tier publishes the image and the chart to and installs them from, with
# skopeo to read them back (tests/node/test_registry.py).
node_packages=(containerd runc containernetworking-plugins iptables conntrack docker-registry skopeo)
missing=()
for p in "${node_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
      die "apt-get install ${missing[*]} failed"
  else
    log "warning: the node needs the Debian packages ${missing[*]} (as root: apt-get install)"
  fi
fi

started=$SECONDS
wanted=()
for name in kubelet kube-proxy; do [[ -x "$bin_dir/$name" ]] || wanted+=("$name"); done
if ((${#wanted[@]})); then build_kubernetes "${wanted[@]}"; fi
if [[ ! -x "$bin_dir/coredns" ]]; then
  build_module coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns \
    "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
fi
if [[ ! -x "$bin_dir/traefik" ]]; then
  build_module traefik github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" github.com/traefik/traefik/v3/cmd/traefik \
    "-X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION"
fi
# The Prometheus Operator's two binaries, cached under a key of their own (a bump rebuilds only
# them) and linked into the bin dir.
po_bin="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/node/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION-r$RECIPE"
for pair in prometheus-operator:operator prometheus-config-reloader:prometheus-config-reloader; do
  name="${pair%%:*}"
  if [[ ! -x "$po_bin/$name" ]]; then
    build_module "$name" github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
      "github.com/prometheus-operator/prometheus-operator/cmd/${pair#*:}" \
      "-X github.com/prometheus/common/version.Version=${PROMETHEUS_OPERATOR_VERSION#v}"
    mkdir -p "$po_bin"
    mv -f "$bin_dir/$name" "$po_bin/$name"
  fi
  ln -sfn "$po_bin/$name" "$bin_dir/$name"
done
# Prometheus for the operator's pods (Debian's package has no Kubernetes service discovery),
# with only that discovery compiled in; keyed on its own too.
prom_bin="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/node/prometheus-$PROMETHEUS_VERSION-r$RECIPE"
if [[ ! -x "$prom_bin/prometheus" ]]; then
  build_module prometheus github.com/prometheus/prometheus "$PROMETHEUS_VERSION" \
    github.com/prometheus/prometheus/cmd/prometheus \
    "-X github.com/prometheus/common/version.Version=$PROMETHEUS_RELEASE" remove_all_sd,enable_kubernetes_sd
  mkdir -p "$prom_bin"
  mv -f "$bin_dir/prometheus" "$prom_bin/prometheus"
fi
ln -sfn "$prom_bin/prometheus" "$bin_dir/prometheus"
if [[ ! -d "$po_bin/crds" ]]; then  # the operator's CRDs, as its module ships them
  po_dir="$(module_file "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" Dir)"
  mkdir -p "$po_bin/crds.tmp"
  cp "$po_dir"/example/prometheus-operator-crd/*.yaml "$po_bin/crds.tmp/"
  mv "$po_bin/crds.tmp" "$po_bin/crds"
fi
ln -sfn "$po_bin/crds" "$bin_dir/prometheus-operator-crds"
if ((SECONDS - started > 1)); then log "built in $((SECONDS - started))s"; fi
log "binaries in $bin_dir"
echo "$bin_dir"
