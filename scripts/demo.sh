#!/usr/bin/env bash
# `make run`: Corral's main job on its embedded SQLite default, narrated. An agent's workspace is
# created, a project imported, checkpointed, changed, diffed and restored.
set -euo pipefail
cd "$(dirname "$0")/.."
export CORRAL_HOME="${CORRAL_HOME:-$PWD/.corral-demo}"
rm -rf "$CORRAL_HOME"
corral() { ./bin/corral "$@"; }
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'; else bold='' dim='' off=''; fi
step() { printf '\n%s▶ %s%s\n' "$bold" "$*" "$off"; }
say() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }
show() { say "corral $*"; corral "$@"; }

echo "Corral demo: a versioned workspace for an agent, in SQLite at $CORRAL_HOME/corral.db"

step "Create a vault (the agent's workspace) and select it"
show vault create agent-1 --use

step "Import a sample project from the host"
show import examples/sample-project /
show tree

step "Checkpoint before the agent starts"
show checkpoint save before-agent -m "pristine import"

step "The agent changes files: edits one, adds one, deletes one"
say "printf '…new parse.js…' | corral write /src/parse.js"
printf 'export function parse(line) {\n  const done = /^x\\s+/.test(line);\n  return { text: line.replace(/^x\\s+/, "").trim(), done };\n}\n' | corral write /src/parse.js
show write /src/format.js 'export const bullet = (done) => (done ? "[x]" : "[ ]");'
show rm /scripts/build.sh

step "What did the agent change since the checkpoint?"
show diff before-agent HEAD -p

step "History of the workspace"
show log

step "Fork the workspace to try something risky without touching the original"
show vault fork agent-1 agent-1-experiment
show --vault agent-1-experiment rm -r /src
show --vault agent-1-experiment ls /
echo "the original still has its src/:"
show ls /src

step "Roll the agent's work back to the checkpoint"
show checkpoint restore before-agent
show diff before-agent HEAD
show cat /scripts/build.sh

step "Everything above is in the hash-chained audit log"
show audit -n 8
show audit verify
show stats

printf '\n%sDone.%s The workspace is in %s; try: CORRAL_HOME=%s ./bin/corral --help\n' "$bold" "$off" "$CORRAL_HOME" "$CORRAL_HOME"
