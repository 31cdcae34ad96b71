#!/usr/bin/env bash
# Installs what the test suite (scripts/test.sh) needs and a Debian machine lacks, and nothing
# else: when everything is there it only looks, and returns in a moment. Debian packages come
# from apt-get (as root, or through sudo); rustfmt and clippy from rustup; cargo-fuzz from
# `cargo install`. The Rust toolchain itself is not installed here (https://rustup.rs).
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
fail() { echo "install-deps: $*" >&2; exit 1; }

missing=()
# cargo builds herald's C dependencies (ring) and libFuzzer (C++) for scripts/fuzz.sh.
{ have cc && have c++; } || missing+=(build-essential)
have node || missing+=(nodejs)
have npm || missing+=(npm)
# npm, cargo and the TLS tests trust the system's certificate store.
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# client-compat-tests run a real nginx (nginx.test.mjs) and a real headless Chromium
# (browser.test.mjs, readme.test.mjs) at these Debian paths; they fail, not skip, without them.
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The cluster tests start redis-server processes of their own; redis-cluster.test.mjs joins
# three of them into a Redis Cluster with redis-cli (Debian's redis-tools).
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
# tls.test.mjs and doctor.test.mjs make certificates per run with the openssl CLI.
have openssl || missing+=(openssl)
# readme.test.mjs runs the README's curl example.
have curl || missing+=(curl)
# tests/logs.rs gives herald a terminal with util-linux `script`.
have script || missing+=(bsdutils)
# The bench stops its servers with kill(1) (`command -v kill` would find the shell builtin).
type -P kill >/dev/null || missing+=(procps)
# The python-socketio client test makes virtualenvs (`python3 -m venv`, which needs ensurepip:
# Debian ships it in python3-venv).
have python3 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  have apt-get || fail "missing: ${missing[*]} (Debian package names); this script installs them only with apt-get"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif have sudo; then
    as_root=(sudo)
  else
    fail "missing: ${missing[*]}; installing them needs root: run this script as root, install sudo," \
      "or run apt-get install ${missing[*]} as root yourself"
  fi
  echo "== installing ${missing[*]}"
  log="$(mktemp)"
  if ! { "${as_root[@]}" apt-get update -qq &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    fail "installing ${missing[*]} failed (apt-get's output is above)"
  fi
  rm -f "$log"
fi

have node || fail "node is still missing after installing nodejs"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || fail "Node.js $(node --version) is too old: the suite needs Node.js 18 or newer"

have cargo || fail "cargo is missing: this project needs the Rust toolchain (https://rustup.rs)"
# scripts/test.sh checks formatting and lints first.
if ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  have rustup || fail "cargo fmt or cargo clippy is missing, and there is no rustup to add them"
  echo "== installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi
# scripts/fuzz.sh --smoke runs the fuzz targets with cargo-fuzz.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
