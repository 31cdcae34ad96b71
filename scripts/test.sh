#!/usr/bin/env bash
# The whole test suite, as README.md gives it: first what a Debian machine lacks is installed
# (scripts/install-deps.sh), then formatting and lints, the Rust unit and integration tests (the
# protocol conformance suite among them), the real socket.io-client (4.8.4 and 2.5.0) and
# python-socketio (5.x and 4.x) against the release binary, then smoke runs of the benchmark
# harness, the soak (docs/reliability.md) and the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== install what is missing"
scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== client-compat-tests (socket.io-client and python-socketio against target/release/herald)"
cargo build --release --locked
# js-fixtures: the npm reference server and the redis-emitter script the suite and bench use.
(cd js-fixtures && npm ci --no-audit --no-fund)
cd client-compat-tests
npm ci --no-audit --no-fund
HERALD_BIN="$(cd .. && pwd)/target/release/herald" npm test
cd ..
echo "== bench --quick (smoke test of the benchmark harness, S1 to S5: herald, the npm reference and bare socketioxide; no timing assertions)"
bench/run --quick --servers herald,reference,socketioxide
echo "== bench soak --smoke (2 minutes of connect/disconnect churn and publishing: nothing fails, open files come back)"
target/release/bench soak --smoke
echo "== fuzz --smoke (every parser target for a few seconds)"
scripts/fuzz.sh --smoke
