#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine: the system packages the tests use
# (cc for the escape probe, tmux for the terminal tests, openssl for test
# certificates, sqlite3 to tamper with ledgers, chromium for the verify page),
# then npm ci, which
# compiles the addon and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v nm >/dev/null || need+=(binutils)  # what the built addon imports (test/unit/native-contract.test.mjs)
command -v python3 >/dev/null || need+=(python3)
command -v tmux >/dev/null || need+=(tmux)
command -v openssl >/dev/null || need+=(openssl)
command -v perl >/dev/null || need+=(perl)
command -v age >/dev/null || need+=(age)  # interop tests of the secrets files (test/unit/sops-interop.test.mjs)
command -v git >/dev/null || need+=(git)  # git in and around the box (test/sandbox/host-exec*.test.mjs, git-identity.test.mjs, test/unit/box-git-config.test.mjs)
command -v strace >/dev/null || need+=(strace)  # the secrets file's atomic write as the kernel sees it (test/unit/sops-write.test.mjs)
command -v sqlite3 >/dev/null || need+=(sqlite3)  # ledger tampering as an attacker would (test/gate/receipt-evidence.test.mjs, checkpoint-tamper.test.mjs)
command -v chromium >/dev/null || need+=(chromium)  # the receipt bundle verify page, tested in it (test/e2e/verify-page.test.mjs)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${need[*]}: install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ ! -f build/Release/latchgate.node ] || [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run build --silent
fi
