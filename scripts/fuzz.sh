#!/usr/bin/env bash
# Fuzzes every parser of herald's own (fuzz/fuzz_targets/) with cargo-fuzz (libFuzzer), each for
# a bounded time, starting from the small corpus in fuzz/corpus/ (a copy: the run's discoveries
# stay out of the repository). A crash fails the script and leaves its input in
# fuzz/artifacts/<target>/ (reproduce: cargo fuzz run <target> <file>).
#
#   scripts/fuzz.sh             60 s per target (the report run)
#   scripts/fuzz.sh --smoke     5 s per target (CI: the targets build and run)
#   scripts/fuzz.sh 600         any number of seconds per target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes nightly-only compiler
# flags; on a stable toolchain RUSTC_BOOTSTRAP=1 allows them for this build only.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
case "${1:-}" in
  --smoke) seconds=5 ;;
  "") ;;
  *[!0-9]*) echo "usage: scripts/fuzz.sh [--smoke | SECONDS]" >&2; exit 2 ;;
  *) seconds=$1 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 1
fi
export RUSTC_BOOTSTRAP=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

targets=$(cd fuzz && cargo fuzz list)
# One build for all targets; without AddressSanitizer, as herald forbids unsafe code.
(cd fuzz && cargo fuzz build --sanitizer none --release)
for target in $targets; do
  mkdir -p "$work/$target"
  echo "== fuzz $target for ${seconds}s"
  log="$work/$target.log"
  if ! (cd fuzz && cargo fuzz run --sanitizer none --release "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1) \
      >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz $target FAILED; the input that broke it is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | sed 's/^/   /' || true
done
echo "== fuzz: every target ran ${seconds}s without a crash"
