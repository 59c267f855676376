#!/usr/bin/env bash
# The machine's prerequisites, checked up front, and the project's own tools, fetched into .local.
#
#   infra/tools.sh check   the machine's prerequisites: as root with apt, missing Debian packages are
#                          installed; anything still missing is one line naming what installs it
#   infra/tools.sh fetch   Prometheus and promtool (built from the Go module proxy into .local/bin),
#                          the AsyncAPI reference parser (npm ci in infra/asyncapi); no-op when present
#   infra/tools.sh bin     print the directory of the fetched binaries (make puts it first on PATH)
#
# Why Prometheus from the Go module proxy rather than Debian's package: it needs no root, every
# machine gets the same pinned version (Debian 12 ships 2.42), and Go is already a prerequisite
# here. The build takes a few minutes once; later runs find the binaries in .local/bin.
#
# Environment (defaults in brackets):
#   JOINTUSE_LOCAL_DIR [.local]   where the tools go (.local/bin)
# Exit codes: 0 ok; 1 a fetch failed; 2 a prerequisite is missing or bad usage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${JOINTUSE_LOCAL_DIR:-$ROOT/.local}
BIN=$LOCAL/bin
# Prometheus 3.x is published as module versions v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_MODULE=github.com/prometheus/prometheus
PROMETHEUS_VERSION=v0.316.0
PROMETHEUS_STAMP=$BIN/.prometheus-$PROMETHEUS_VERSION
ASYNCAPI_DIR=$ROOT/infra/asyncapi
PYTHON=${PYTHON:-python3.11}

say() { printf '[tools] %s\n' "$*" >&2; }

missing=()   # what is missing, one line each
packages=()  # Debian packages that would install it

need() {  # need WHAT INSTALL [DEBIAN_PACKAGE...]
  missing+=("missing: $1; install: $2")
  packages+=("${@:3}")
}

version_at_least() {  # version_at_least HAVE WANT (dotted numbers)
  [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]
}

java_major() {
  "$1" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'
}

find_missing() {
  missing=() packages=()
  command -v "$PYTHON" >/dev/null || need "Python 3.11 ($PYTHON)" "apt-get install python3.11 python3.11-venv" python3.11 python3.11-venv
  command -v curl >/dev/null || need "curl" "apt-get install curl" curl
  command -v mvn >/dev/null || need "Maven 3.8+ (fetches Kafka and the registry)" "apt-get install maven" maven
  if ! command -v java >/dev/null || (( $(java_major java) < 17 )); then
    need "Java 17+ (runs Kafka)" "apt-get install openjdk-17-jre-headless" openjdk-17-jre-headless
  fi
  if ! "$ROOT/infra/local.sh" registry-java >/dev/null 2>&1; then
    need "Java 21+ (runs the schema registry)" "a Java 21 JDK (e.g. Temurin 21) under /usr/lib/jvm, or set JOINTUSE_REGISTRY_JAVA"
  fi
  if ! command -v go >/dev/null; then
    need "Go 1.21+ (builds Prometheus and promtool)" "a Go 1.21+ release (Debian 12's golang-go is 1.19: use bookworm-backports)"
  elif ! version_at_least "$(go env GOVERSION | sed 's/^go//')" 1.21; then
    need "Go 1.21+ (found $(go env GOVERSION))" "a Go 1.21+ release; it fetches the toolchain Prometheus needs itself"
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    need "Node.js 18+ with npm (runs the AsyncAPI parser in the tests)" "apt-get install nodejs npm" nodejs npm
  elif ! version_at_least "$(node --version | sed 's/^v//')" 18; then
    need "Node.js 18+ (found $(node --version))" "a Node.js 18+ release"
  fi
}

# Debian packages are installed when this runs as root with apt (CI, a fresh container); otherwise,
# and for what no Debian package provides, it stops with one line per missing prerequisite.
check() {
  find_missing
  if ((${#packages[@]})) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null \
      || say "apt-get could not install them"
    find_missing
  fi
  local line
  for line in "${missing[@]}"; do say "$line"; done
  ((${#missing[@]} == 0))
}

fetch_prometheus() {
  if [[ -f $PROMETHEUS_STAMP && -x $BIN/prometheus && -x $BIN/promtool ]]; then return; fi
  mkdir -p "$BIN"
  say "building Prometheus and promtool $PROMETHEUS_VERSION from the Go module proxy into $BIN (a few minutes, once)"
  local started=$SECONDS
  # remove_all_sd: no cloud service discovery (the tests scrape static targets), a far smaller build.
  # The version flag makes `--version` say what was pinned.
  local minor_patch=${PROMETHEUS_VERSION#v0.3}  # v0.316.0 -> 16.0
  local release=3.$minor_patch
  local log=$LOCAL/prometheus-build.log
  (
    cd "$LOCAL"
    GOBIN=$BIN GOFLAGS=-mod=mod go install -tags remove_all_sd \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
      "$PROMETHEUS_MODULE/cmd/prometheus@$PROMETHEUS_VERSION" "$PROMETHEUS_MODULE/cmd/promtool@$PROMETHEUS_VERSION" \
      >"$log" 2>&1 &
    build=$!
    while kill -0 "$build" 2>/dev/null; do
      sleep 30
      kill -0 "$build" 2>/dev/null \
        && say "still building Prometheus ($((SECONDS - started)) s, $(grep -c '^go: downloading' "$log") modules fetched)"
    done
    wait "$build"
  ) || { say "error: building Prometheus failed; last lines of $log:"; tail -n 20 "$log" >&2; exit 1; }
  rm -f "$BIN"/.prometheus-*
  touch "$PROMETHEUS_STAMP"
  say "Prometheus $("$BIN/prometheus" --version 2>&1 | head -n 1 | awk '{print $3}') built in $((SECONDS - started)) s"
}

fetch_asyncapi() {
  local stamp=$ASYNCAPI_DIR/node_modules/.jointuse-installed
  if [[ -f $stamp && $stamp -nt $ASYNCAPI_DIR/package-lock.json ]]; then return; fi
  say "installing the AsyncAPI parser (npm ci in infra/asyncapi)"
  # --ignore-scripts: nothing the parser needs runs at install time (one dependency would report usage).
  (cd "$ASYNCAPI_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
    || { say "error: npm ci in infra/asyncapi failed"; exit 1; }
  touch "$stamp"
}

case ${1:-} in
  check) check || exit 2 ;;
  fetch) fetch_prometheus; fetch_asyncapi ;;
  bin) echo "$BIN" ;;
  -h | --help | help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
