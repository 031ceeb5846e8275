#!/usr/bin/env bash
# `make run`: Corral's main job on its embedded SQLite default, narrated. An agent's workspace is
# created, a project imported, checkpointed, changed, diffed and restored; then the agent's
# commands run through the execution boundary: policy, sandbox, change summary, approvals.
set -euo pipefail
cd "$(dirname "$0")/.."
export CORRAL_HOME="${CORRAL_HOME:-$PWD/.corral-demo}"
rm -rf "$CORRAL_HOME"
corral() { ./bin/corral "$@"; }
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'; else bold='' dim='' off=''; fi
step() { printf '\n%s▶ %s%s\n' "$bold" "$*" "$off"; }
say() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }
# Prints a command as it would be typed: arguments with spaces or shell characters in single quotes.
quoted() { local out='' a; for a in "$@"; do if [[ "$a" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then out+="$a "; else out+="'${a//\'/\'\\\'\'}' "; fi; done; printf '%s' "${out% }"; }
show() { say "corral $(quoted "$@")"; corral "$@"; }

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

step "What this machine offers for sandboxing"
show doctor

step "The agent runs commands through the execution boundary (policy → sandbox → change summary → one commit)"
show exec -- ls -la
show exec --shell 'echo "- [ ] ship it" >> todo.txt; mkdir -p build && cp src/*.js build/'
show exec --json --readonly -- cat todo.txt

step "The policy refuses what it must, and asks a person for what it should"
show exec --shell 'cat /etc/shadow' || echo "(exit $?: denied, the command did not run)"
show exec --shell 'curl -s https://example.com -o page.html' || echo "(exit $?: pending approval)"
show approvals list
id=$(corral approvals list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).approvals[0].id))')
show approvals deny "$id" --reason "no downloads in the demo"

step "A runaway command is killed with its whole process tree"
show exec --timeout 1s --shell 'sleep 60 & sleep 60' || echo "(exit $?: timed out, as timeout(1) says)"

step "The daemon: sandboxes over an HTTP API on a Unix socket (mode 0600), driven through the TypeScript SDK"
show daemon start
trap './bin/corral daemon stop >/dev/null 2>&1 || true' EXIT
say "node scripts/demo-sdk.ts agent-1"
NODE_NO_WARNINGS=1 node scripts/demo-sdk.ts agent-1
show daemon status
show daemon stop
trap - EXIT

step "Everything above is in the hash-chained audit log"
show audit -n 8
show audit verify
show stats

printf '\n%sDone.%s The workspace is in %s; try: CORRAL_HOME=%s ./bin/corral --help\n' "$bold" "$off" "$CORRAL_HOME" "$CORRAL_HOME"
