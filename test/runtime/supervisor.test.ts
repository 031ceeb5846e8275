// The exec supervisor with real processes: the whole tree dies on timeout and after the command,
// output is capped head and tail, binary-safe, streamed, with heartbeats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runSupervised, supervisorArgs, type ExecEvent, type SupervisedSpec } from '../../src/runtime/supervisor.ts';
import { OutputCapture } from '../../src/runtime/output-capture.ts';
import { tempDir } from '../helpers.ts';

const env = { PATH: '/usr/bin:/bin', SHLVL: '1' };
const base = { env, timeoutMs: 10_000, graceMs: 300, outputCap: 1 << 20 } satisfies Partial<SupervisedSpec>;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

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
  assert.equal(alive(gpid), false, 'no process of the exec is left');
});

test('a command that exits leaves nothing behind: background and nohup children are killed', async () => {
  const dir = tempDir();
  const pidFile = join(dir, 'bg');
  const r = await runSupervised({ ...base, argv: ['sh', '-c', `nohup sleep 1000 >/dev/null 2>&1 & echo $! > ${pidFile}; (setsid sleep 1001 &); exit 0`] });
  assert.equal(r.exitCode, 0);
  const { readFileSync } = await import('node:fs');
  assert.equal(alive(Number(readFileSync(pidFile, 'utf8'))), false);
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
