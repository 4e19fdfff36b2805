#!/usr/bin/env sh
# `orchestrator <command>`: the CLI, run from a checkout (TypeScript through tsx, no build step).
root=$(cd "$(dirname "$0")/.." && pwd)
exec node --import "$root/node_modules/tsx/dist/esm/index.mjs" "$root/src/main.ts" "$@"
