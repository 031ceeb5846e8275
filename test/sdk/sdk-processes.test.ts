import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Corral as BrowserCorral, isCorralApiError, type LogLine, type Process } from '../../src/sdk/index.ts';
import { startTestDaemon } from './sdk-daemon.ts';

const daemon = await startTestDaemon();
const RFC3339_NS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

async function until(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function all<T>(lines: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const l of lines) out.push(l);
  return out;
}

test('processes: start, list, logs (json, text with timestamps, tail, streams, since/until, follow), stop, remove', { timeout: 60_000 }, async () => {
  const sb = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const p = await sb.processes.start({ name: 'web', cmd: 'for i in 1 2 3; do echo out$i; echo err$i >&2; done; trap "" TERM; while :; do sleep 0.05; done' });
  assert.match(p.id, /^proc_/);
  assert.equal(p.state, 'running');
  assert.equal(p.name, 'web');
  assert.equal(p.sandbox, sb.id);
  assert.equal(JSON.parse(JSON.stringify(p)).id, p.id, 'a handle serialises as its fields');
  await assert.rejects(sb.processes.start({ name: 'web', cmd: ['true'] }), (e) => isCorralApiError(e, 'CONFLICT'));
  await assert.rejects(sb.processes.start({ name: '../x', cmd: ['true'] }), (e) => isCorralApiError(e, 'INVALID_NAME'));

  // Followed from the start: the stored lines, then the live ones, until the run ends.
  const followed = all(p.logs({ follow: true, stderr: false }));
  await until(async () => (await all(p.logs())).some((l) => l.text === 'err3'));
  const lines = await all(p.logs());
  assert.deepEqual(lines.map((l) => `${l.stream}:${l.text}`).sort(), ['stderr:err1', 'stderr:err2', 'stderr:err3', 'stdout:out1', 'stdout:out2', 'stdout:out3']);
  for (const l of lines) {
    assert.match(l.time, RFC3339_NS);
    assert.equal(l.exec, p.exec);
  }
  assert.deepEqual((await all(p.logs({ stdout: false, tail: 2 }))).map((l) => l.text), ['err2', 'err3']);
  const text = await all(p.logs({ format: 'text', timestamps: true, tail: 1, stdout: false }));
  assert.equal(text.length, 1);
  assert.match(text[0]!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z err3$/);
  assert.deepEqual(await all(p.logs({ format: 'text', stderr: false })), ['out1', 'out2', 'out3']);
  assert.deepEqual(await all(p.logs({ since: Date.now() + 3_600_000 })), []);
  assert.deepEqual(await all(p.logs({ until: new Date('2000-01-01T00:00:00Z') })), []);
  assert.equal((await all(p.logs({ since: '2000-01-01T00:00:00Z' }))).length, 6);
  await assert.rejects(all(p.logs({ stdout: false, stderr: false })), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  await assert.rejects(all(p.logs({ since: -1 })), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));

  assert.deepEqual((await sb.processes.list({ running: true })).map((x) => x.id), [p.id]);
  assert.equal((await sb.processes.get(p.id)).name, 'web');
  const run = await p.run();
  assert.equal(run?.id, p.exec);
  assert.equal(run?.state, 'running');
  await assert.rejects(p.remove(), (e) => isCorralApiError(e, 'EXEC_STATE'));

  // It ignores TERM: stop waits its timeout, then KILLs; the follow ends with the run.
  assert.equal(await p.stop({ timeoutMs: 300 }), p);
  assert.equal(p.state, 'stopped');
  assert.equal(p.pid, null);
  assert.deepEqual((await followed).map((l: LogLine) => l.text), ['out1', 'out2', 'out3']);
  assert.deepEqual(await sb.processes.list({ running: true }), []);
  assert.equal((await p.remove()).state, 'removed');
  await assert.rejects(sb.processes.get(p.id), (e) => isCorralApiError(e, 'PROCESS_NOT_FOUND'));
  await assert.rejects(p.refresh(), (e) => isCorralApiError(e, 'PROCESS_NOT_FOUND'));
  await sb.destroy();
});

test('restart on-failure: every run in the logs; kill; force remove; another sandbox cannot get it', { timeout: 60_000 }, async () => {
  const sb = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const flaky = await sb.processes.start({ name: 'flaky', cmd: 'echo run; exit 3', restart: 'on-failure', maxRestarts: 1 });
  await until(async () => (await flaky.refresh()).state === 'failed');
  assert.equal(flaky.restarts, 1);
  assert.equal(flaky.exitCode, 3);
  const runs = await all(flaky.logs());
  assert.deepEqual(runs.map((l) => l.text), ['run', 'run']);
  assert.notEqual(runs[0]!.exec, runs[1]!.exec, 'each run is its own exec');

  const svc = await sb.processes.start({ name: 'svc', cmd: ['sleep', '60'], restart: 'on-failure' });
  assert.equal(await svc.kill('KILL'), svc);
  await until(async () => (await svc.refresh()).restarts === 1);
  const removed = await svc.remove({ force: true });
  assert.equal(removed.state, 'removed');

  const other = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  await assert.rejects(other.processes.get(flaky.id), (e) => isCorralApiError(e, 'PROCESS_NOT_FOUND'));
  await assert.rejects(sb.processes.get('proc_nope'), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  const listed: Process[] = await sb.processes.list();
  assert.deepEqual(listed.map((x) => x.name), ['flaky']);
  await other.destroy();
  await sb.destroy();
});

test('exec logs over TCP with a key: stored lines, follow until the exec ends, text form', { timeout: 30_000 }, async () => {
  const client = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read', 'sandboxes:write', 'exec']) });
  const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const done = await sb.exec('echo a; echo b >&2; printf tail', { background: true });
  await done.wait();
  // Time order across streams depends on when each chunk arrived: compare as a set.
  assert.deepEqual((await all(done.logs())).map((l) => `${l.stream}:${l.text}:${l.exec}`).sort(), [`stderr:b:${done.id}`, `stdout:a:${done.id}`, `stdout:tail:${done.id}`]);
  assert.deepEqual(await all(done.logs({ format: 'text', stderr: false })), ['a', 'tail']);
  const live = await sb.exec('echo x; sleep 0.3; echo y', { background: true });
  assert.deepEqual((await all(live.logs({ follow: true }))).map((l) => l.text), ['x', 'y']);
  // Leaving the loop early closes the stream.
  const slow = await sb.exec('for i in 1 2 3 4 5 6 7 8 9; do echo $i; sleep 0.1; done', { background: true });
  for await (const l of slow.logs({ follow: true })) if (l.text === '2') break;
  await slow.kill();
  await sb.destroy();
});
