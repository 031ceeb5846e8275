// corral exec, corral approvals and a doctor smoke call, through the real CLI: the --json
// envelope, exit codes, human output, every flag, bad values, and the approval round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { corral, corralAsync, tempDir, type CliResult } from '../helpers.ts';

const isRoot = process.getuid?.() === 0;
const hasPython = ['/usr/bin/python3', '/usr/local/bin/python3', '/bin/python3'].some((p) => existsSync(p));

function ok(r: CliResult): void {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}${r.stdout}`);
}

/** A fresh home with a current vault `t` holding /a.txt and /sub/. */
function home(): string {
  const h = tempDir('corral-exec-cli-');
  ok(corral(h, ['vault', 'create', 't', '--use']));
  ok(corral(h, ['write', '/a.txt', 'a\n']));
  ok(corral(h, ['mkdir', '/sub']));
  return h;
}

/** `corral exec --json ARGS`: stdout must be the one envelope and nothing else. */
function execJson(h: string, args: string[], options: { input?: string } = {}): CliResult {
  const r = corral(h, ['exec', '--json', ...args], options);
  assert.ok(r.json !== undefined, `stdout is one JSON document: ${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, JSON.stringify(r.json, null, 2) + '\n', 'nothing but the envelope on stdout');
  return r;
}

const ENVELOPE_KEYS = ['kind', 'version', 'id', 'command', 'vault', 'backend', 'decision', 'checkpoint', 'status', 'exitCode', 'signal', 'timedOut', 'oomKilled', 'truncated', 'stdout', 'stderr', 'encoding', 'durationMs', 'stages', 'usage', 'changes', 'warnings'];
const OPTIONAL_KEYS = ['approval', 'error', 'limits'];

function assertEnvelope(e: Record<string, unknown>): void {
  for (const k of ENVELOPE_KEYS) assert.ok(k in e, `envelope has ${k}`);
  for (const k of Object.keys(e)) assert.ok(ENVELOPE_KEYS.includes(k) || OPTIONAL_KEYS.includes(k), `unexpected envelope field ${k}`);
  assert.equal(e.kind, 'corral.exec.result');
  assert.equal(e.version, 1);
  assert.match(String(e.id), /^exec_[0-9a-hjkmnp-tv-z]{26}$/);
}

test('exec --json prints exactly the corral.exec.result envelope; the exit code is the command\'s', () => {
  const h = home();
  ok(corral(h, ['write', '/gone.txt', 'bye\n']));
  const r = execJson(h, ['--', 'sh', '-c', 'echo out; echo err >&2; echo more >> a.txt; rm gone.txt; echo new > b.txt; exit 3']);
  assert.equal(r.code, 3, r.stdout);
  const e = r.json;
  assertEnvelope(e);
  assert.deepEqual(e.command, { argv: ['sh', '-c', 'echo out; echo err >&2; echo more >> a.txt; rm gone.txt; echo new > b.txt; exit 3'], shell: null, cwd: '/workspace' });
  assert.equal(e.vault, 't');
  assert.ok(['namespace', 'host'].includes(e.backend));
  assert.deepEqual(Object.keys(e.decision).sort(), ['action', 'categories', 'reason', 'rule']);
  assert.equal(e.decision.action, 'allow_with_checkpoint');
  assert.ok(e.decision.categories.includes('destructive'), JSON.stringify(e.decision));
  assert.match(e.decision.rule, /^workstation\./);
  assert.match(e.checkpoint, /^cp-/);
  assert.equal(e.status, 'completed');
  assert.equal(e.exitCode, 3);
  assert.equal(e.signal, null);
  assert.equal(e.timedOut, false);
  assert.equal(e.oomKilled, false);
  assert.equal(e.truncated, false);
  assert.equal(e.stdout, 'out\n');
  assert.equal(e.stderr, 'err\n');
  assert.equal(e.encoding, 'utf8');
  assert.equal(typeof e.durationMs, 'number');
  for (const s of ['validating', 'resolving', 'policy', 'baseline', 'checkpointing', 'mounting', 'executing', 'summarizing']) assert.equal(typeof e.stages[s], 'number', `stage ${s}`);
  assert.deepEqual(Object.keys(e.usage).sort(), ['cpuMs', 'cpuSystemMs', 'cpuUserMs', 'peakMemoryBytes', 'readBytes', 'writtenBytes']);
  assert.match(e.changes.commit, /^[0-9a-f]{64}$/);
  assert.deepEqual(e.changes.added, [{ path: '/b.txt', size: 4, kind: 'file' }]);
  assert.deepEqual(e.changes.modified, [{ path: '/a.txt', size: 7, kind: 'file' }]);
  assert.deepEqual(e.changes.deleted, [{ path: '/gone.txt', size: 4, kind: 'file' }]);
  assert.deepEqual(e.warnings, []);
  assert.equal(e.limits.timeoutMs, 300_000, 'the default timeout');
  if (process.getuid?.() === 0) {
    assert.ok(e.limits.memoryBytes > 0 && e.limits.memoryBytes <= 4 * 1024 ** 3, 'a default memory limit where cgroups allow one');
    assert.equal(e.limits.pids, 4096, 'a default pids limit where cgroups allow one');
  }
  // The changes are one commit of the vault; the checkpoint holds the state before.
  assert.equal(corral(h, ['cat', '/a.txt']).stdout, 'a\nmore\n');
  assert.equal(corral(h, ['cat', '/b.txt']).stdout, 'new\n');
  assert.equal(corral(h, ['log', '--json']).json.commits[0].id, e.changes.commit);
  assert.equal(corral(h, ['cat', '/gone.txt', '--rev', e.checkpoint]).stdout, 'bye\n');
});

test('human mode: the command\'s output streams through, then the summary on stderr', () => {
  const h = home();
  ok(corral(h, ['write', '/gone.txt', 'bye\n']));
  const r = corral(h, ['exec', '--', 'sh', '-c', 'echo out; echo err >&2; echo more >> a.txt; rm gone.txt; mkdir d; echo n > d/b.txt']);
  ok(r);
  assert.equal(r.stdout, 'out\n', 'stdout carries only the command\'s stdout');
  const lines = r.stderr.split('\n');
  assert.equal(lines[0], 'err', 'the command\'s stderr comes first');
  assert.match(r.stderr, /^corral: policy {3}allow_with_checkpoint \[[a-z_, ]+\] rule workstation\.[a-z-]+: /m);
  assert.match(r.stderr, /^corral: checkpoint cp-\S+ \(restore with: corral checkpoint restore cp-\S+\)$/m);
  assert.match(r.stderr, /^corral: result {3}exit 0 in \d+ ms on (namespace|host)$/m);
  assert.match(r.stderr, /^corral: changes {2}commit [0-9a-f]{12}: 1 added, 1 modified, 1 deleted$/m);
  assert.match(r.stderr, /^corral: {3}\+ \/d\/b\.txt \(2 B\)$/m);
  assert.match(r.stderr, /^corral: {3}~ \/a\.txt \(7 B\)$/m);
  assert.match(r.stderr, /^corral: {3}- \/gone\.txt \(4 B\)$/m);

  const none = corral(h, ['exec', '--', 'cat', 'a.txt']);
  ok(none);
  assert.equal(none.stdout, 'a\nmore\n');
  assert.match(none.stderr, /^corral: policy {3}allow \[read_only\] rule workstation\.read-only: /m);
  assert.match(none.stderr, /^corral: changes {2}none$/m);
  assert.doesNotMatch(none.stderr, /checkpoint/);
});

test('timeout: exit 124, timedOut; durations take ms, s, m or plain milliseconds', () => {
  const h = home();
  for (const t of ['300ms', '300']) {
    const r = execJson(h, ['--timeout', t, '--grace', '100ms', '--', 'sleep', '5']);
    assert.equal(r.code, 124, `--timeout ${t}: ${r.stdout}`);
    assert.equal(r.json.status, 'completed');
    assert.equal(r.json.timedOut, true);
    assert.equal(r.json.exitCode, null);
    assert.ok(r.json.signal, 'the signal that ended it');
  }
  for (const t of ['2s', '5m', '1h', '60000']) ok(corral(h, ['exec', '--timeout', t, '--grace', '2s', '--', 'true']));
  const h2 = corral(h, ['exec', '--timeout', '300ms', '--', 'sleep', '5']);
  assert.equal(h2.code, 124);
  assert.match(h2.stderr, /^corral: result {3}timed out \((killed by SIG[A-Z]+|exit \d+)\) in \d+ ms/m);
});

test('denied (cat /etc/shadow), pending (curl), failed (bad cwd): exit 125, status says which', () => {
  const h = home();
  const denied = execJson(h, ['--', 'cat', '/etc/shadow']);
  assert.equal(denied.code, 125);
  assertEnvelope(denied.json);
  assert.equal(denied.json.status, 'denied');
  assert.equal(denied.json.decision.action, 'deny');
  assert.equal(denied.json.decision.rule, 'workstation.host-paths');
  assert.equal(denied.json.exitCode, null);
  assert.equal(denied.json.changes, null);
  assert.equal(denied.json.stdout, '');
  const deniedHuman = corral(h, ['exec', '--', 'cat', '/etc/shadow']);
  assert.equal(deniedHuman.code, 125);
  assert.equal(deniedHuman.stdout, '');
  assert.match(deniedHuman.stderr, /^corral: policy {3}deny .*rule workstation\.host-paths/m);
  assert.match(deniedHuman.stderr, /^corral: denied {3}the command did not run$/m);

  const pending = execJson(h, ['--', 'curl', 'https://example.com']);
  assert.equal(pending.code, 125);
  assertEnvelope(pending.json);
  assert.equal(pending.json.status, 'pending');
  assert.equal(pending.json.decision.action, 'require_approval');
  assert.ok(pending.json.decision.categories.includes('networked'));
  assert.match(pending.json.approval.id, /^apr_[0-9a-f]{16}$/);
  assert.ok(!Number.isNaN(Date.parse(pending.json.approval.expiresAt)));
  const pendingHuman = corral(h, ['exec', '--', 'curl', 'https://example.com']);
  assert.equal(pendingHuman.code, 125);
  assert.match(pendingHuman.stderr, /^corral: pending {2}approval apr_[0-9a-f]{16} .*corral approvals approve apr_[0-9a-f]{16}.*corral exec --resume apr_[0-9a-f]{16}/m);

  const missing = execJson(h, ['--cwd', 'nope', '--', 'ls']);
  assert.equal(missing.code, 125);
  assertEnvelope(missing.json);
  assert.equal(missing.json.status, 'failed');
  assert.equal(missing.json.error.code, 'PATH_NOT_FOUND');
  const outside = execJson(h, ['--cwd', '/etc', '--', 'ls']);
  assert.equal(outside.code, 125);
  assert.equal(outside.json.status, 'failed');
  assert.equal(outside.json.error.code, 'INVALID_PATH');
  assert.match(outside.json.error.message, /inside the workspace/);
  const notDir = execJson(h, ['--cwd', 'a.txt', '--', 'ls']);
  assert.equal(notDir.code, 125);
  assert.equal(notDir.json.error.code, 'NOT_A_DIRECTORY');
  const human = corral(h, ['exec', '--cwd', 'nope', '--', 'ls']);
  assert.equal(human.code, 125);
  assert.match(human.stderr, /^corral: failed {3}PATH_NOT_FOUND: /m);
});

test('--shell, --cwd, --env, stdin piped and --stdin FILE', () => {
  const h = home();
  const sh = execJson(h, ['--shell', "printf 'b\\na\\n' | sort && echo done"]);
  ok(sh);
  assert.deepEqual(sh.json.command, { argv: [], shell: "printf 'b\\na\\n' | sort && echo done", cwd: '/workspace' });
  assert.equal(sh.json.stdout, 'a\nb\ndone\n');

  for (const cwd of ['sub', '/workspace/sub', './sub/']) {
    const r = execJson(h, ['--cwd', cwd, '--', 'pwd']);
    ok(r);
    assert.equal(r.json.command.cwd, '/workspace/sub');
    if (r.json.backend === 'namespace') assert.equal(r.json.stdout, '/workspace/sub\n');
    else assert.match(r.json.stdout, /\/sub\n$/);
  }

  const env = execJson(h, ['--env', 'GREETING=hello world', '--env', 'EMPTY=', '--env', 'EQ=a=b', '--', 'sh', '-c', 'printf "%s|%s|%s|%s" "$GREETING" "${EMPTY-unset}" "$EQ" "$CORRAL_VAULT"']);
  ok(env);
  assert.equal(env.json.stdout, 'hello world||a=b|t');

  const piped = execJson(h, ['--', 'cat'], { input: 'from the pipe\n' });
  ok(piped);
  assert.equal(piped.json.stdout, 'from the pipe\n');
  const pipedHuman = corral(h, ['exec', '--', 'wc', '-c'], { input: 'x'.repeat(100_000) });
  ok(pipedHuman);
  assert.equal(pipedHuman.stdout.trim(), '100000');

  const file = join(tempDir('corral-exec-stdin-'), 'in.txt');
  writeFileSync(file, 'from a file\n');
  const fromFile = execJson(h, ['--stdin', file, '--', 'cat'], { input: 'not this\n' });
  ok(fromFile);
  assert.equal(fromFile.json.stdout, 'from a file\n');
});

test('--readonly discards writes; --checkpoint never; --on-failure discard', () => {
  const h = home();
  const ro = execJson(h, ['--readonly', '--', 'sh', '-c', 'echo x > ro.txt; cat a.txt']);
  assert.equal(ro.json.status, 'completed');
  assert.equal(ro.json.checkpoint, null, 'nothing can change, so no checkpoint');
  assert.equal(ro.json.changes.commit, null);
  assert.equal(ro.json.changes.discarded, 'readonly');
  assert.equal(corral(h, ['stat', '/ro.txt']).code, 3, 'nothing reached the vault');
  const roHuman = corral(h, ['exec', '--readonly', '--', 'sh', '-c', 'echo x > ro.txt']);
  assert.match(roHuman.stderr, /^corral: changes {2}discarded \(readonly\)$/m);

  const never = execJson(h, ['--checkpoint', 'never', '--', 'sh', '-c', 'echo y > y.txt']);
  ok(never);
  assert.equal(never.json.decision.action, 'allow_with_checkpoint');
  assert.equal(never.json.checkpoint, null);
  assert.deepEqual(corral(h, ['checkpoint', 'list', '--json']).json.checkpoints, []);

  const discard = execJson(h, ['--on-failure', 'discard', '--checkpoint', 'never', '--', 'sh', '-c', 'echo z > z.txt; exit 1']);
  assert.equal(discard.code, 1);
  assert.equal(discard.json.changes.discarded, 'failed');
  assert.equal(corral(h, ['stat', '/z.txt']).code, 3);
  const keep = execJson(h, ['--checkpoint', 'never', '--', 'sh', '-c', 'echo z > z.txt; exit 1']);
  assert.equal(keep.code, 1);
  assert.deepEqual(keep.json.changes.added.map((c: { path: string }) => c.path), ['/z.txt'], 'kept by default');
});

test('--backend host and namespace; a command killed by a signal', () => {
  const h = home();
  const host = execJson(h, ['--backend', 'host', '--', 'sh', '-c', 'echo h > h.txt; pwd']);
  ok(host);
  assert.equal(host.json.backend, 'host');
  assert.deepEqual(host.json.changes.added.map((c: { path: string }) => c.path), ['/h.txt']);
  assert.notEqual(host.json.stdout, '/workspace\n', 'the host backend runs in the warm checkout on the host');
  const hostKilled = execJson(h, ['--backend', 'host', '--shell', 'kill -9 $$']);
  assert.equal(hostKilled.code, 137);
  assert.equal(hostKilled.json.signal, 'SIGKILL');
  assert.equal(hostKilled.json.exitCode, null);

  const doctor = corral(h, ['doctor', '--json']);
  ok(doctor);
  assert.equal(doctor.json.kind, 'corral.doctor');
  assert.ok(Array.isArray(doctor.json.checks));
  if (!doctor.json.backends.namespace.available) return;
  const ns = execJson(h, ['--backend', 'namespace', '--', 'sh', '-c', 'echo n > n.txt; pwd; hostname']);
  ok(ns);
  assert.equal(ns.json.backend, 'namespace');
  assert.equal(ns.json.stdout, '/workspace\ncorral\n');
  assert.deepEqual(ns.json.changes.added.map((c: { path: string }) => c.path), ['/n.txt']);
  // Both backends report a signal death the same way: signal set, exitCode null, exit 128+N.
  const nsKilled = execJson(h, ['--backend', 'namespace', '--shell', 'kill -9 $$']);
  assert.equal(nsKilled.code, 137);
  assert.equal(nsKilled.json.signal, 'SIGKILL');
  assert.equal(nsKilled.json.exitCode, null);
  const missing = execJson(h, ['--backend', 'namespace', '--', 'no-such-program']);
  assert.equal(missing.code, 127, 'a missing program exits 127 on both backends');
});

test('--policy: a preset, and a policy file with a rule and a timeout limit', () => {
  const h = home();
  const ro = execJson(h, ['--policy', 'read-only', '--', 'touch', 'x']);
  assert.equal(ro.code, 125);
  assert.equal(ro.json.status, 'denied');
  assert.equal(ro.json.decision.rule, 'read-only.default');
  ok(execJson(h, ['--policy', 'read-only', '--', 'cat', 'a.txt']));

  const file = join(tempDir('corral-exec-policy-'), 'policy.yaml');
  writeFileSync(file, ['extends: workstation', 'limits: { timeout: 300ms }', 'rules:', '  - id: no-ls', '    match: { program: ls }', '    action: deny', '    reason: listing is not allowed here', ''].join('\n'));
  const ls = execJson(h, ['--policy', file, '--', 'ls']);
  assert.equal(ls.code, 125);
  assert.equal(ls.json.decision.rule, 'no-ls');
  assert.match(ls.json.decision.reason, /listing is not allowed here/);
  const slow = execJson(h, ['--policy', file, '--timeout', '1m', '--grace', '100ms', '--', 'sleep', '5']);
  assert.equal(slow.code, 124, 'the policy\'s timeout is stricter than --timeout');
  assert.equal(slow.json.timedOut, true);

  const unknown = execJson(h, ['--policy', 'nonsense', '--', 'ls']);
  assert.equal(unknown.code, 125);
  assert.equal(unknown.json.status, 'failed');
  assert.equal(unknown.json.error.code, 'POLICY_INVALID');
});

test('sizes and limits: --output-cap keeps head and tail; --memory and --pids through cgroups (as root)', () => {
  const h = home();
  const capped = execJson(h, ['--output-cap', '4', '--', 'printf', 'abcdefghij']);
  ok(capped);
  assert.equal(capped.json.truncated, true);
  assert.equal(capped.json.stdout, 'ab\n[corral: 6 bytes of output left out]\nij');
  for (const size of ['1k', '1K', '1048576', '10m', '1g']) ok(corral(h, ['exec', '--output-cap', size, '--tmp-size', size.toLowerCase() === '1k' ? '64k' : size, '--', 'true']));
  if (!isRoot) return;

  const limited = execJson(h, ['--memory', '64m', '--pids', '32', '--cpu', '100', '--', 'true']);
  ok(limited);
  assert.deepEqual(limited.json.warnings, []);
  assert.equal(typeof limited.json.usage.peakMemoryBytes, 'number');
  const forks = execJson(h, ['--pids', '6', '--', 'sh', '-c', 'for i in $(seq 30); do sleep 1 & done; wait']);
  assert.notEqual(forks.code, 0);
  assert.match(forks.json.stderr, /fork/i);
  if (hasPython) {
    const hog = execJson(h, ['--memory', '32m', '--', 'python3', '-c', 'x = bytearray(256 * 1024 * 1024)']);
    assert.equal(hog.json.oomKilled, true, hog.stdout);
    assert.equal(hog.code, 137);
  }
});

test('bad values: exit 2, INVALID_ARGUMENT, a message naming the flag', () => {
  const h = home();
  const commits = corral(h, ['log', '--json']).json.commits.length;
  const cases: [string[], RegExp][] = [
    [['--timeout', '5x', '--', 'true'], /timeout/],
    [['--grace', 'soon', '--', 'true'], /grace/],
    [['--wait-approval', '3y', '--', 'true'], /wait-approval/],
    [['--memory', 'lots', '--', 'true'], /memory/],
    [['--tmp-size', 'big', '--', 'true'], /tmp-size/],
    [['--output-cap', '1q', '--', 'true'], /output-cap/],
    [['--pids', 'many', '--', 'true'], /pids/],
    [['--cpu', 'half', '--', 'true'], /cpu/],
    [['--backend', 'vm', '--', 'true'], /backend/],
    [['--checkpoint', 'maybe', '--', 'true'], /checkpoint/],
    [['--on-failure', 'retry', '--', 'true'], /on-failure/],
    [['--env', 'NOEQUALS', '--', 'true'], /--env/],
    [[], /give a command/],
    [['--shell', 'true', '--', 'true'], /not both/],
  ];
  for (const [args, message] of cases) {
    const r = corral(h, ['exec', '--json', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.equal(r.json.error.code, 'INVALID_ARGUMENT', args.join(' '));
    assert.match(r.json.error.message, message, args.join(' '));
  }
  for (const [args] of cases.slice(0, 3)) {
    const human = corral(h, ['exec', ...args]);
    assert.equal(human.code, 2);
    assert.equal(human.stdout, '');
    assert.match(human.stderr, /^error \[INVALID_ARGUMENT\] /m);
  }
  assert.equal(corral(h, ['log', '--json']).json.commits.length, commits, 'nothing ran');
  assert.deepEqual(corral(h, ['approvals', 'list', '--state', 'all', '--json']).json.approvals, []);
});

test('approvals list/show/approve/deny --reason, exec --resume runs the command once', () => {
  const h = home();
  // `eval` is unknown to the analysis: the workstation policy sends it to a person.
  const first = execJson(h, ['--checkpoint', 'never', '--shell', "eval 'echo ran >> log.txt'"]);
  assert.equal(first.code, 125);
  assert.equal(first.json.status, 'pending');
  const id: string = first.json.approval.id;
  const other = execJson(h, ['--', 'curl', 'https://example.com']);
  const otherId: string = other.json.approval.id;

  const list = corral(h, ['approvals', 'list', '--json']);
  ok(list);
  assert.deepEqual(list.json.approvals.map((a: { id: string; state: string }) => [a.id, a.state]), [[id, 'pending'], [otherId, 'pending']]);
  const listHuman = corral(h, ['approvals', 'ls']);
  ok(listHuman);
  assert.match(listHuman.stdout, /^ID +STATE +VAULT +CREATED +COMMAND +REASON/);
  assert.match(listHuman.stdout, new RegExp(`^${id} +pending +t +`, 'm'));
  const show = corral(h, ['approvals', 'show', id, '--json']);
  ok(show);
  assert.equal(show.json.id, id);
  assert.equal(show.json.state, 'pending');
  assert.equal(show.json.vault, 't');
  assert.equal(show.json.command, "eval 'echo ran >> log.txt'");
  assert.match(corral(h, ['approvals', 'info', id]).stdout, new RegExp(`^approval ${id} \\(pending\\)`));

  const early = execJson(h, ['--resume', id]);
  assert.equal(early.code, 125);
  assert.equal(early.json.status, 'failed');
  assert.equal(early.json.error.code, 'APPROVAL_NOT_PENDING');

  const denied = corral(h, ['approvals', 'deny', otherId, '--reason', 'no network today', '--json']);
  ok(denied);
  assert.equal(denied.json.state, 'denied');
  assert.equal(denied.json.answerReason, 'no network today');
  assert.equal(execJson(h, ['--resume', otherId]).code, 125);

  const approved = corral(h, ['approvals', 'approve', id, '--reason', 'checked it']);
  ok(approved);
  assert.match(approved.stdout, new RegExp(`^approved ${id}: .*\nrun it with: corral exec --resume ${id}\n$`));
  assert.equal(corral(h, ['approvals', 'approve', id]).code, 4, 'answered once');
  assert.equal(corral(h, ['approvals', 'show', id, '--json']).json.answerReason, 'checked it');

  const resumed = execJson(h, ['--resume', id]);
  ok(resumed);
  assert.equal(resumed.json.status, 'completed');
  assert.equal(resumed.json.vault, 't');
  assert.equal(resumed.json.command.shell, "eval 'echo ran >> log.txt'");
  assert.deepEqual(resumed.json.changes.added.map((c: { path: string }) => c.path), ['/log.txt']);
  const again = execJson(h, ['--resume', id]);
  assert.equal(again.code, 125);
  assert.equal(again.json.error.code, 'APPROVAL_NOT_PENDING');
  assert.equal(corral(h, ['cat', '/log.txt']).stdout, 'ran\n', 'the resumed command ran once');

  const used = corral(h, ['approvals', 'list', '--state', 'used', '--json']);
  assert.deepEqual(used.json.approvals.map((a: { id: string }) => a.id), [id]);
  assert.equal(corral(h, ['approvals', 'list', '--state', 'all', '--json']).json.approvals.length, 2);
  assert.match(corral(h, ['approvals', 'list']).stdout, /^no pending approvals$/m);
  const bad = corral(h, ['approvals', 'show', 'apr_nothex', '--json']);
  assert.equal(bad.code, 2);
  assert.equal(bad.json.error.code, 'INVALID_ARGUMENT');
  const gone = corral(h, ['approvals', 'show', 'apr_0123456789abcdef', '--json']);
  assert.equal(gone.code, 3);
  assert.equal(gone.json.error.code, 'APPROVAL_NOT_FOUND');
  assert.equal(corral(h, ['approvals', 'list', '--state', 'bogus']).code, 2);
});

test('--wait-approval: the exec continues when another process approves', async () => {
  const h = home();
  const running = corralAsync(h, ['exec', '--json', '--wait-approval', '10s', '--checkpoint', 'never', '--shell', "eval 'echo waited > w.txt'"]);
  let id: string | undefined;
  for (let i = 0; i < 100 && id === undefined; i++) {
    const list = corral(h, ['approvals', 'list', '--json']);
    id = list.json?.approvals?.[0]?.id;
    if (id === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(id, 'the waiting exec created an approval');
  ok(corral(h, ['approvals', 'approve', id, '--reason', 'go']));
  const r = await running;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.json.status, 'completed');
  assert.equal(r.json.decision.action, 'require_approval');
  assert.deepEqual(r.json.changes.added.map((c: { path: string }) => c.path), ['/w.txt']);
  assert.equal(corral(h, ['approvals', 'show', id, '--json']).json.state, 'used');
  assert.equal(execJson(h, ['--resume', id]).code, 125, 'the approval was used by the waiting exec');
});

test('limit values are checked before anything runs: exit 2, naming the flag', () => {
  const h = home();
  for (const [args, flag] of [[['--pids', '0'], 'pids'], [['--memory', '0'], 'memory'], [['--tmp-size', '1k'], 'tmp-size'], [['--timeout', '0'], 'timeout']] as const) {
    const r = corral(h, ['exec', '--json', ...args, '--', 'true']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
    assert.equal(r.json.error.code, 'INVALID_ARGUMENT');
    assert.match(r.json.error.message, new RegExp(`--${flag}`));
  }
  // An unknown policy is found by the pipeline: the command did not run, so 125 with the reason.
  const p = corral(h, ['exec', '--json', '--policy', 'nonsense', '--', 'true']);
  assert.equal(p.code, 125);
  assert.equal(p.json.status, 'failed');
  assert.equal(p.json.error.code, 'POLICY_INVALID');
});

test('a policy timeout holds whatever --timeout asks', () => {
  const h = home();
  const file = join(tempDir('corral-exec-policy-'), 'policy.yaml');
  writeFileSync(file, 'extends: workstation\nlimits: { timeout: 300ms }\n');
  const r = execJson(h, ['--policy', file, '--timeout', '1h', '--grace', '100ms', '--', 'sleep', '2']);
  assert.equal(r.json.timedOut, true);
  assert.equal(r.code, 124);
});

test('an approval keeps only the request, not the caller\'s stdin stream or signal', () => {
  const h = home();
  const r = execJson(h, ['--', 'curl', 'https://example.com']);
  const a = corral(h, ['approvals', 'show', r.json.approval.id, '--json']).json;
  assert.equal(a.request.stdin, undefined);
  assert.equal(a.request.signal, undefined);
  assert.equal(a.request.approvalWaitMs, undefined);
});

test('--open-files and --file-size set rlimits the command sees', () => {
  const h = home();
  const r = execJson(h, ['--policy', 'permissive', '--open-files', '64', '--file-size', '1m', '--shell', 'ulimit -n; ulimit -f']);
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.json.stdout, '64\n1024\n', "bash's ulimit -f counts KiB");
  const bad = corral(h, ['exec', '--json', '--open-files', '2', '--', 'true']);
  assert.equal(bad.code, 2);
  assert.match(bad.json.error.message, /--open-files/);
});
