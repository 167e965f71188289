#!/usr/bin/env bash
# Builds the release binary users download: glibc statically linked (crt-static), LTO, stripped.
#
# Why glibc and not musl: musl's allocator makes inference 20-40 % slower (ARCHITECTURE.md).
# `--target` is required: with it, RUSTFLAGS apply to the binary only, not to build scripts and
# proc macros (which must stay dynamically linked to run on the build machine).
#
# Usage: packaging/build.sh [OUT]     (OUT defaults to target/dist/astromesh)
# Respects CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-target}"
out="${1:-$target_dir/dist/astromesh}"

export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
# LTO comes from the release profile (thin, across all crates: fat LTO with one codegen unit
# took far longer on a 2-core builder for a few percent of size). Symbols are stripped here so
# that local release builds keep them for profiling.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-thin}"
export CARGO_PROFILE_RELEASE_STRIP=symbols

cargo build --locked --release --target "$target" --bin astromesh

built="$target_dir/$target/release/astromesh"
mkdir -p "$(dirname "$out")"
cp "$built" "$out"

description="$(file -L "$out")"
echo "$description"
case "$description" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "error: $out is not statically linked" >&2; exit 1 ;;
esac
# The binary must run with nothing else installed: it prints its version without any file.
"$out" --version
ls -l "$out" | awk '{print "size: " $5 " bytes"}'
