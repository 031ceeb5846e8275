// The exec supervisor with real processes: the whole tree dies on timeout and after the command,
// output is capped head and tail, binary-safe, streamed, with heartbeats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pidAlive } from '../../src/runtime/cgroups.ts';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ensurePrivateDir, MAX_GRACE_MS, runSupervised, supervisorArgs, type ExecEvent, type SupervisedSpec } from '../../src/runtime/supervisor.ts';
import { OutputCapture } from '../../src/runtime/output-capture.ts';
import { removeScratch } from '../../src/runtime/supervised-sandbox.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { tempDir } from '../helpers.ts';

const env = { PATH: '/usr/bin:/bin', SHLVL: '1' };
const base = { env, timeoutMs: 10_000, graceMs: 300, outputCap: 1 << 20 } satisfies Partial<SupervisedSpec>;

test('supervisorArgs passes limits, cgroups, overlay and the command after --', () => {
  const args = supervisorArgs({ ...base, argv: ['echo', '--', 'x'], cgroupProcs: ['/sys/fs/cgroup/pids/a/cgroup.procs'], rlimits: { NOFILE: 64, CORE: 0 }, overlay: { lower: '/l', upper: '/u', work: '/w', merged: '/m' }, chdir: '/m/src' });
  assert.deepEqual(args.slice(args.indexOf('--')), ['--', 'echo', '--', 'x']);
  assert.ok(args.includes('--cgroup-procs') && args.includes('NOFILE=64') && args.includes('CORE=0'));
  assert.deepEqual(args.slice(args.indexOf('--overlay'), args.indexOf('--overlay') + 5), ['--overlay', '/l', '/u', '/w', '/m']);
});

test('exit code, stdout and stderr come back separately', async () => {
  const r = await runSupervised({ ...base, argv: ['sh', '-c', 'echo out; echo err >&2; exit 7'] });
  assert.equal(r.exitCode, 7);
  assert.equal(r.signal, null);
  assert.equal(r.stdout.bytes().toString(), 'out\n');
  assert.equal(r.stderr.bytes().toString(), 'err\n');
  assert.equal(r.timedOut, false);
});

test('a missing program exits 127 with a message, not a crash', async () => {
  const r = await runSupervised({ ...base, argv: ['/nonexistent/program'] });
  assert.equal(r.exitCode, 127);
  assert.match(r.stderr.bytes().toString(), /cannot run/);
});

test('timeout: SIGTERM then SIGKILL to the whole tree, including a detached grandchild that ignores SIGTERM', async () => {
  const dir = tempDir();
  const pidFile = join(dir, 'grandchild');
  // The grandchild double-forks into its own session, ignores SIGTERM and writes its pid.
  const script = `trap '' TERM; setsid sh -c 'trap "" TERM; echo $$ > ${pidFile}; exec sleep 1000' & sleep 0.2; echo started; sleep 1000`;
  const r = await runSupervised({ ...base, argv: ['sh', '-c', script], timeoutMs: 600, graceMs: 200 });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, null);
  assert.equal(r.signal, 'SIGKILL', 'the shell ignores SIGTERM, so it is killed after the grace');
  assert.match(r.stdout.bytes().toString(), /started/, 'output produced before the timeout is kept');
  const { readFileSync } = await import('node:fs');
  const gpid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(gpid > 0);
  assert.equal(pidAlive(gpid), false, 'no process of the exec is left');
});

test('a command that exits leaves nothing behind: background and nohup children are killed', async () => {
  const dir = tempDir();
  const pidFile = join(dir, 'bg');
  const r = await runSupervised({ ...base, argv: ['sh', '-c', `nohup sleep 1000 >/dev/null 2>&1 & echo $! > ${pidFile}; (setsid sleep 1001 &); exit 0`] });
  assert.equal(r.exitCode, 0);
  const { readFileSync } = await import('node:fs');
  assert.equal(pidAlive(Number(readFileSync(pidFile, 'utf8'))), false);
});

test('a command killed by a signal reports it', async () => {
  const r = await runSupervised({ ...base, argv: ['sh', '-c', 'kill -SEGV $$'] });
  assert.equal(r.exitCode, null);
  assert.equal(r.signal, 'SIGSEGV');
});

test('output over the cap keeps the head and the tail and says truncated', async () => {
  const r = await runSupervised({ ...base, outputCap: 1000, argv: ['sh', '-c', 'echo BEGIN; head -c 200000 /dev/zero | tr "\\0" x; echo; echo END'] });
  const out = r.stdout.bytes().toString();
  assert.equal(r.stdout.truncated, true);
  assert.ok(out.startsWith('BEGIN\n'));
  assert.ok(out.endsWith('END\n'));
  assert.match(out, /\[corral: \d+ bytes of output left out\]/);
  assert.ok(r.stdout.total > 200000);
});

test('binary output is kept byte for byte', async () => {
  const r = await runSupervised({ ...base, argv: ['sh', '-c', 'printf "\\000\\377\\001abc\\200"'] });
  assert.deepEqual([...r.stdout.bytes()], [0, 255, 1, 97, 98, 99, 128]);
});

test('stdin as bytes, as a file and as a stream', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'in'), 'from a file');
  const bytes = await runSupervised({ ...base, argv: ['cat'], stdin: Buffer.from('from bytes') });
  assert.equal(bytes.stdout.bytes().toString(), 'from bytes');
  const file = await runSupervised({ ...base, argv: ['cat'], stdin: { file: join(dir, 'in') } });
  assert.equal(file.stdout.bytes().toString(), 'from a file');
  const stream = await runSupervised({ ...base, argv: ['cat'], stdin: Readable.from([Buffer.from('from '), Buffer.from('a stream')]) });
  assert.equal(stream.stdout.bytes().toString(), 'from a stream');
});

test('events stream output as it is produced, with heartbeats, then exit', async () => {
  const events: ExecEvent[] = [];
  const r = await runSupervised({ ...base, heartbeatMs: 50, argv: ['sh', '-c', 'echo one; sleep 0.3; echo two'], onEvent: (e) => events.push(e) });
  assert.equal(r.exitCode, 0);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'started');
  assert.equal(types.at(-1), 'exit');
  const one = types.indexOf('stdout');
  const beat = types.indexOf('heartbeat');
  assert.ok(one >= 0 && beat > one, 'a heartbeat arrives between the two lines');
  assert.equal(events.filter((e) => e.type === 'stdout').map((e) => (e as { data: Buffer }).data.toString()).join(''), 'one\ntwo\n');
});

test('an abort signal ends the exec like a timeout, marked cancelled', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const r = await runSupervised({ ...base, argv: ['sleep', '100'], signal: ac.signal });
  assert.equal(r.cancelled, true);
  assert.equal(r.signal, 'SIGTERM');
});

test('rlimits: no core dumps and a file-size limit', async () => {
  const r = await runSupervised({ ...base, rlimits: { CORE: 0, FSIZE: 1024 }, argv: ['sh', '-c', 'ulimit -c; head -c 4096 /dev/zero > /dev/shm/corral-fsize-test-$$ ; echo rc=$?; rm -f /dev/shm/corral-fsize-test-$$'] });
  const out = r.stdout.bytes().toString();
  assert.match(out, /^0\n/);
  assert.doesNotMatch(out, /rc=0/);
});

test('OutputCapture keeps everything under the cap and exactly head+tail over it', () => {
  const c = new OutputCapture(10);
  c.push(Buffer.from('abc'));
  assert.equal(c.bytes().toString(), 'abc');
  c.push(Buffer.from('defghijklmnop'));
  assert.equal(c.truncated, true);
  const s = c.bytes().toString();
  assert.ok(s.startsWith('abcde'));
  assert.ok(s.endsWith('lmnop'));
  assert.equal(c.total, 16);
});

test('supervisorArgs caps the grace period at a minute and passes --term-spare-child when asked', () => {
  const args = supervisorArgs({ ...base, argv: ['true'], graceMs: 10 * 60_000, termSpareChild: true });
  assert.equal(args[args.indexOf('--grace-ms') + 1], String(MAX_GRACE_MS));
  assert.equal(MAX_GRACE_MS, 60_000);
  assert.ok(args.indexOf('--term-spare-child') < args.indexOf('--'));
  assert.ok(!supervisorArgs({ ...base, argv: ['true'] }).includes('--term-spare-child'));
});

test('a 700-level deep tree in the overlay upper does not crash the opaque walk: the replaced directory is reported', async () => {
  const dir = tempDir();
  const o = { lower: join(dir, 'lower'), upper: join(dir, 'upper'), work: join(dir, 'work'), merged: join(dir, 'merged') };
  for (const d of Object.values(o)) mkdirSync(d);
  mkdirSync(join(o.lower, 'keep'));
  writeFileSync(join(o.lower, 'keep', 'old.txt'), 'old');
  const deep = `zz/${'a/'.repeat(700)}`;
  const r = await runSupervised({ ...base, overlay: o, chdir: o.merged, argv: ['sh', '-c', `rm -rf keep && mkdir keep && echo n > keep/new.txt && mkdir -p ${deep}`] });
  assert.equal(r.exitCode, 0, r.stderr.bytes().toString());
  assert.deepEqual(r.opaque, ['keep']);
  removeScratch(dir); // overlayfs leaves work/work with mode 0
});

test('a supervisor killed by its command: EXEC_FAILED at once, not a wait for the orphan holding stdout', { timeout: 20_000 }, async () => {
  const dir = tempDir();
  const pidFile = join(dir, 'orphan');
  // The orphan leaves the tree (setsid + its supervisor dies) and keeps stdout open for 30 s.
  const script = `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 30' & sleep 0.2; kill -9 $PPID; sleep 100`;
  try {
    await assert.rejects(runSupervised({ ...base, timeoutMs: 1000, argv: ['sh', '-c', script] }), (e) => isCorralError(e, 'EXEC_FAILED') && /supervisor was killed/.test(e.message) && /escaped/.test(e.message));
  } finally {
    const orphan = Number(readFileSync(pidFile, 'utf8'));
    if (orphan > 0) process.kill(orphan, 'SIGKILL');
  }
});

test('a report without its final `done` is not trusted: EXEC_FAILED', async () => {
  const dir = tempDir();
  const fake = join(dir, 'fake-supervisor');
  // Reports the start and an exit, then dies as a crash after the exit line would.
  writeFileSync(fake, '#!/bin/sh\necho "started $$" >&3\necho "exit 0" >&3\nkill -SEGV $$\n', { mode: 0o755 });
  const saved = process.env.CORRAL_RUN_HELPER;
  process.env.CORRAL_RUN_HELPER = fake;
  try {
    await assert.rejects(runSupervised({ ...base, argv: ['true'] }), (e) => isCorralError(e, 'EXEC_FAILED') && /SIGSEGV/.test(e.message));
    writeFileSync(fake, '#!/bin/sh\necho "started $$" >&3\necho "exit 0" >&3\n', { mode: 0o755 });
    await assert.rejects(runSupervised({ ...base, argv: ['true'] }), (e) => isCorralError(e, 'EXEC_FAILED') && /without reporting the end/.test(e.message));
  } finally {
    if (saved === undefined) delete process.env.CORRAL_RUN_HELPER;
    else process.env.CORRAL_RUN_HELPER = saved;
  }
});

test('ensurePrivateDir creates a 0700 directory, tightens one of ours, and refuses a symlink, a file or a directory of someone else', () => {
  const dir = tempDir();
  const made = join(dir, 'new');
  assert.equal(ensurePrivateDir(made), made);
  assert.equal(lstatSync(made).mode & 0o777, 0o700);
  const loose = join(dir, 'loose');
  mkdirSync(loose);
  chmodSync(loose, 0o777);
  ensurePrivateDir(loose);
  assert.equal(lstatSync(loose).mode & 0o077, 0, 'group and other write bits are gone');
  const target = join(dir, 'target');
  mkdirSync(target, { mode: 0o700 });
  symlinkSync(target, join(dir, 'link'));
  assert.throws(() => ensurePrivateDir(join(dir, 'link')), (e) => isCorralError(e, 'EXEC_FAILED') && e.message.includes(join(dir, 'link')) && /symbolic link/.test(e.message) && /CORRAL_SCRATCH/.test(e.message));
  writeFileSync(join(dir, 'file'), '');
  assert.throws(() => ensurePrivateDir(join(dir, 'file')), (e) => isCorralError(e, 'EXEC_FAILED') && /not a directory/.test(e.message));
  if (process.getuid?.() === 0) {
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs);
    chmodSync(theirs, 0o777);
    chownSync(theirs, 65534, 65534);
    assert.throws(() => ensurePrivateDir(theirs), (e) => isCorralError(e, 'EXEC_FAILED') && /belongs to uid 65534/.test(e.message));
    assert.equal(lstatSync(theirs).mode & 0o777, 0o777, 'a directory of someone else is not touched');
  }
});
