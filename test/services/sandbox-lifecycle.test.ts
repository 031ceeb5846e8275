// The sandbox lifecycle with real execs: pause stops every process (output stops growing) and
// refuses execs, resume continues them; extend; checkpoints; the sweep's idle auto-stop and TTL
// expiry (with a running exec) driven by a fake clock; the events each step publishes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isCorralError } from '../../src/protocol/errors.ts';
import { procStat } from '../../src/runtime/process-identity.ts';
import { descendants } from '../../src/runtime/process-tree.ts';
import { Corral } from '../../src/services/corral.ts';
import type { CorralEvent } from '../../src/services/event-bus.ts';
import { openCorral, tempDir, testCaller } from '../helpers.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
// The loop runs in a subshell so the tree always has two processes (bash and the subshell), not
// only while a `sleep` happens to be alive: on the host backend bash is the supervisor's child.
const LOOP = '(while :; do echo x; sleep 0.01; done); :';

/** A Corral whose store clock the test moves by hand (`clock.now += ms`). */
function withClock(): { corral: Corral; clock: { now: number } } {
  const clock = { now: Date.now() };
  const corral = new Corral({ home: tempDir(), caller: testCaller, now: () => clock.now });
  after(() => corral.close());
  return { corral, clock };
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}

const stdoutBytes = (corral: Corral, exec: string) => corral.execs.output.ends(exec).stdout;

function supervisorOf(corral: Corral, exec: string): number {
  return corral.store.db.get<{ supervisor_pid: number }>('SELECT supervisor_pid FROM execs WHERE id = ?', exec)!.supervisor_pid;
}

function eventsOf(corral: Corral, sandbox: string): CorralEvent[] {
  return corral.events.since(0).events.filter((e) => e.sandbox === sandbox);
}

for (const backend of ['namespace', 'host'] as const) {
  test(`pause stops every process of a running exec (${backend}): output stops, execs are refused; resume continues it`, async () => {
    const corral = openCorral();
    const sb = corral.sandboxes.create({ backend, policy: 'permissive' });
    const { info, done } = corral.execs.start(sb.id, { shell: LOOP, background: true });
    await until('output', () => stdoutBytes(corral, info.id) >= 10);

    const paused = await corral.lifecycle.pause(sb.id);
    assert.equal(paused.state, 'paused');
    assert.equal(corral.sandboxes.get(sb.id).state, 'paused');
    const tree = descendants(supervisorOf(corral, info.id));
    assert.ok(tree.length >= 2, 'the command and its children');
    for (const pid of tree) assert.ok(['T', 'Z'].includes(procStat(pid)?.state ?? ''), `pid ${pid} is stopped`);
    // Bytes in flight at the pause may still land; after that nothing grows.
    await sleep(150);
    const frozen = stdoutBytes(corral, info.id);
    await sleep(400);
    assert.equal(stdoutBytes(corral, info.id), frozen, 'no output while paused');
    assert.ok(isCorralError(catchError(() => corral.execs.start(sb.id, { argv: ['true'] })), 'SANDBOX_STATE'));
    assert.equal(corral.execs.get(info.id).state, 'running');

    // Pausing again changes nothing (and publishes nothing).
    assert.equal((await corral.lifecycle.pause(sb.id)).state, 'paused');
    const resumed = await corral.lifecycle.resume(sb.id);
    assert.equal(resumed.state, 'ready');
    await until('output to grow again', () => stdoutBytes(corral, info.id) > frozen + 5);
    assert.equal((await corral.lifecycle.resume(sb.id)).state, 'ready');

    // An exec runs again (the host backend runs one exec of a vault at a time: after the loop there).
    if (backend === 'namespace') assert.equal((await corral.execs.run(sb.id, { argv: ['echo', 'again'] })).stdout, 'again\n');
    // The background exec is cancelled with the sandbox: paused first, it still ends at once.
    await corral.lifecycle.pause(sb.id);
    const destroyed = await corral.lifecycle.destroy(sb.id);
    assert.equal(destroyed.state, 'destroyed');
    assert.notEqual((await done).state, 'running');
    for (const pid of tree) assert.ok(!['T', 'S', 'R'].includes(procStat(pid)?.state ?? ''), `pid ${pid} is gone`);

    const types = eventsOf(corral, sb.id).map((e) => e.type);
    const again = backend === 'namespace' ? ['exec.started', 'exec.exited'] : [];
    assert.deepEqual(types, ['created', 'ready', 'exec.started', 'paused', 'resumed', ...again, 'paused', 'exec.exited', 'destroyed']);
    const pausedEvent = eventsOf(corral, sb.id).find((e) => e.type === 'paused')!;
    assert.deepEqual(pausedEvent.data.execs, [info.id]);
    assert.equal(pausedEvent.data.reason, 'request');
    assert.ok((pausedEvent.data.processes as number) >= 2);
  });
}

test('an exec accepted just before the pause is stopped once its process starts', async () => {
  const corral = openCorral();
  const sb = corral.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const { info, done } = corral.execs.start(sb.id, { shell: LOOP, background: true });
  // Same tick: the exec is live but its supervisor has not reported a pid yet.
  await corral.lifecycle.pause(sb.id);
  await until('the process to start', () => corral.store.db.get<{ p: number | null }>('SELECT supervisor_pid AS p FROM execs WHERE id = ?', info.id)!.p !== null);
  await until('it to be stopped', () => {
    const tree = descendants(supervisorOf(corral, info.id));
    return tree.length > 0 && tree.every((pid) => ['T', 'Z'].includes(procStat(pid)?.state ?? ''));
  });
  await sleep(150);
  const frozen = stdoutBytes(corral, info.id);
  await sleep(300);
  assert.equal(stdoutBytes(corral, info.id), frozen);
  await corral.lifecycle.resume(sb.id);
  await until('output after the resume', () => stdoutBytes(corral, info.id) > frozen);
  corral.execs.kill(info.id);
  await done;
});

test('pause, resume and extend refuse a destroyed sandbox and answer another tenant with not found', async () => {
  const corral = openCorral();
  const mine = corral.sandboxes.create({}, { tenant: 'a' });
  const theirs = corral.sandboxes.create({}, { tenant: 'b' });
  for (const op of [() => corral.lifecycle.pause(theirs.id, { tenant: 'a' }), () => corral.lifecycle.resume(theirs.id, { tenant: 'a' })])
    await assert.rejects(op(), (e) => isCorralError(e, 'SANDBOX_NOT_FOUND'));
  assert.ok(isCorralError(catchError(() => corral.lifecycle.extend(theirs.id, 60, { tenant: 'a' })), 'SANDBOX_NOT_FOUND'));
  assert.ok(isCorralError(catchError(() => corral.lifecycle.saveCheckpoint(theirs.id, {}, { tenant: 'a' })), 'SANDBOX_NOT_FOUND'));
  // The tenant's own work; the owner sees everything.
  assert.equal((await corral.lifecycle.pause(mine.id, { tenant: 'a' })).state, 'paused');
  assert.equal((await corral.lifecycle.resume(mine.id)).state, 'ready');
  const e = corral.events.since(0).events.find((x) => x.type === 'paused')!;
  assert.equal(e.tenant, 'a');

  await corral.lifecycle.destroy(mine.id);
  await assert.rejects(corral.lifecycle.pause(mine.id), (err) => isCorralError(err, 'SANDBOX_STATE'));
  await assert.rejects(corral.lifecycle.resume(mine.id), (err) => isCorralError(err, 'SANDBOX_STATE'));
  assert.ok(isCorralError(catchError(() => corral.lifecycle.extend(mine.id, 60)), 'SANDBOX_STATE'));
  assert.ok(isCorralError(catchError(() => corral.lifecycle.listCheckpoints(mine.id)), 'SANDBOX_STATE'));
});

test('extend: the new expiry is now + ttl; a sandbox without a TTL gets one; bounds as for create', () => {
  const { corral, clock } = withClock();
  const sb = corral.sandboxes.create({});
  assert.equal(sb.expiresAt, null);
  clock.now += 5000;
  const extended = corral.lifecycle.extend(sb.id, 120);
  assert.equal(Date.parse(extended.expiresAt!), clock.now + 120_000);
  const short = corral.sandboxes.create({ ttlSeconds: 3600 });
  assert.equal(Date.parse(corral.lifecycle.extend(short.id, 10).expiresAt!), clock.now + 10_000, 'shorter is allowed too');
  for (const bad of [0, -1, 1.5, 7 * 24 * 3600 + 1, Number.NaN, '60' as unknown as number])
    assert.ok(isCorralError(catchError(() => corral.lifecycle.extend(sb.id, bad)), 'INVALID_ARGUMENT'), String(bad));
  // Extended past its old end, it lives on.
  clock.now += 60_000;
  assert.equal(corral.sandboxes.get(sb.id).state, 'ready');
  clock.now += 61_000;
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get(sb.id)), 'SANDBOX_NOT_FOUND'));
});

test('idle timeout: the sweep pauses a sandbox idle that long (reason idle), never one with a running exec; resume restarts the count', async () => {
  const { corral, clock } = withClock();
  const idle = corral.sandboxes.create({ idleTimeoutSeconds: 60, backend: 'host', policy: 'permissive' });
  assert.equal(idle.idleTimeoutSeconds, 60);
  const busy = corral.sandboxes.create({ idleTimeoutSeconds: 60, backend: 'host', policy: 'permissive' });
  const never = corral.sandboxes.create({});
  assert.equal(never.idleTimeoutSeconds, null);
  assert.ok(isCorralError(catchError(() => corral.sandboxes.create({ idleTimeoutSeconds: 0 })), 'INVALID_ARGUMENT'));

  clock.now += 30_000;
  assert.deepEqual(await corral.lifecycle.sweep(), { expired: [], paused: [], failed: [] });
  // An exec counts as activity from its start and end.
  const r = await corral.execs.run(idle.id, { argv: ['true'] });
  assert.equal(r.exitCode, 0);
  const { info, done } = corral.execs.start(busy.id, { argv: ['sleep', '30'], background: true });
  clock.now += 59_000;
  assert.deepEqual((await corral.lifecycle.sweep()).paused, []);
  clock.now += 2_000;
  const swept = await corral.lifecycle.sweep();
  assert.deepEqual(swept.paused, [idle.id]);
  assert.equal(corral.sandboxes.get(idle.id).state, 'paused');
  assert.equal(corral.sandboxes.get(busy.id).state, 'ready', 'a running exec keeps it awake');
  assert.equal(corral.sandboxes.get(never.id).state, 'ready');
  const event = eventsOf(corral, idle.id).at(-1)!;
  assert.equal(event.type, 'paused');
  assert.deepEqual(event.data, { reason: 'idle', execs: [], processes: 0 });
  // Auto-stopped stays stopped until resumed: an exec is refused meanwhile.
  await assert.rejects(corral.execs.run(idle.id, { argv: ['true'] }), (e) => isCorralError(e, 'SANDBOX_STATE'));
  assert.deepEqual((await corral.lifecycle.sweep()).paused, []);
  const resumed = await corral.lifecycle.resume(idle.id);
  assert.equal(Date.parse(resumed.lastActiveAt), clock.now);
  clock.now += 59_000;
  assert.deepEqual((await corral.lifecycle.sweep()).paused, []);
  corral.execs.kill(info.id);
  await done;
});

test('TTL expiry with a running exec: not destroyed under it, the sweep cancels it, then expired and destroyed', async () => {
  const { corral, clock } = withClock();
  corral.vaults.create('src');
  const sb = corral.sandboxes.create({ vault: 'src', ttlSeconds: 60, backend: 'namespace', policy: 'permissive' });
  const pausedToo = corral.sandboxes.create({ ttlSeconds: 60, backend: 'host', policy: 'permissive' });
  const a = corral.execs.start(sb.id, { shell: LOOP, background: true });
  const b = corral.execs.start(pausedToo.id, { shell: LOOP, background: true });
  await until('both running', () => stdoutBytes(corral, a.info.id) > 0 && stdoutBytes(corral, b.info.id) > 0);
  await corral.lifecycle.pause(pausedToo.id);

  clock.now += 61_000;
  // Expired for callers at once; the vault stays while the exec runs.
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get(sb.id)), 'SANDBOX_NOT_FOUND'));
  assert.deepEqual(corral.sandboxes.list().map((s) => s.id), []);
  assert.ok(corral.store.findVault(sb.vault));
  assert.equal(corral.execs.get(a.info.id).state, 'running');

  const swept = await corral.lifecycle.sweep();
  assert.deepEqual(swept.expired.sort(), [sb.id, pausedToo.id].sort());
  assert.deepEqual(swept.failed, []);
  for (const x of [a, b]) assert.notEqual((await x.done).state, 'running');
  assert.equal(corral.store.findVault(sb.vault), undefined);
  assert.ok(corral.store.findVault('src'));
  assert.deepEqual(corral.sandboxes.list({ state: 'destroyed' }).map((s) => s.id).sort(), [sb.id, pausedToo.id].sort());
  const types = eventsOf(corral, sb.id).map((e) => e.type);
  assert.deepEqual(types.slice(-3), ['exec.exited', 'expired', 'destroyed']);
  assert.deepEqual(await corral.lifecycle.sweep(), { expired: [], paused: [], failed: [] });
});

test('checkpoints: save, list, restore (refused while an exec runs unless cancelExecs), delete; events', async () => {
  const corral = openCorral();
  const sb = corral.sandboxes.create({ backend: 'host', policy: 'permissive' });
  corral.files.write(sb.vault, '/a.txt', enc.encode('one\n'));
  const cp = corral.lifecycle.saveCheckpoint(sb.id, { name: 'first', message: 'before the change' });
  assert.equal(cp.name, 'first');
  assert.equal(cp.message, 'before the change');
  assert.ok(!Number.isNaN(Date.parse(cp.createdAt)));
  assert.ok(isCorralError(catchError(() => corral.lifecycle.saveCheckpoint(sb.id, { name: 'first' })), 'CHECKPOINT_EXISTS'));
  assert.ok(isCorralError(catchError(() => corral.lifecycle.saveCheckpoint(sb.id, { name: '../x' })), 'INVALID_NAME'));
  const r = await corral.execs.run(sb.id, { shell: 'echo two > a.txt; echo new > b.txt' });
  assert.equal(r.exitCode, 0);
  const auto = corral.lifecycle.saveCheckpoint(sb.id);
  assert.match(auto.name, /^cp-/);
  assert.deepEqual(corral.lifecycle.listCheckpoints(sb.id).map((c) => c.name), ['first', auto.name]);

  const { info, done } = corral.execs.start(sb.id, { argv: ['sleep', '30'], background: true });
  const refused = await corral.lifecycle.restoreCheckpoint(sb.id, 'first').catch((e: unknown) => e);
  assert.ok(isCorralError(refused, 'SANDBOX_STATE'));
  assert.deepEqual(refused.details.execs, [info.id]);
  await assert.rejects(corral.lifecycle.restoreCheckpoint(sb.id, 'nope', { cancelExecs: true }), (e) => isCorralError(e, 'CHECKPOINT_NOT_FOUND'));
  assert.equal(corral.execs.get(info.id).state, 'running', 'an unknown checkpoint cancels nothing');
  await assert.rejects(corral.lifecycle.restoreCheckpoint(sb.id, 'HEAD~1'), (e) => isCorralError(e, 'INVALID_NAME'));

  const restored = await corral.lifecycle.restoreCheckpoint(sb.id, 'first', { cancelExecs: true });
  assert.deepEqual(restored.cancelled, [info.id]);
  assert.notEqual((await done).state, 'running');
  assert.equal(restored.restored, cp.commit);
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/a.txt')), 'one\n');
  assert.throws(() => corral.files.cat(sb.vault, '/b.txt'), (e) => isCorralError(e, 'PATH_NOT_FOUND'));
  // The state before is reachable: restoring the automatic checkpoint brings it back.
  await corral.lifecycle.restoreCheckpoint(sb.id, auto.name);
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/a.txt')), 'two\n');
  // An exec sees the restored files.
  assert.equal((await corral.execs.run(sb.id, { argv: ['cat', 'b.txt'] })).stdout, 'new\n');

  assert.equal(corral.lifecycle.deleteCheckpoint(sb.id, 'first').name, 'first');
  assert.deepEqual(corral.lifecycle.listCheckpoints(sb.id).map((c) => c.name), [auto.name]);
  const events = eventsOf(corral, sb.id).filter((e) => e.type === 'checkpointed' || e.type === 'restored');
  assert.deepEqual(events.map((e) => [e.type, e.data.checkpoint]), [['checkpointed', 'first'], ['checkpointed', auto.name], ['restored', 'first'], ['restored', auto.name]]);
  assert.equal(events[2]!.data.commit, restored.commit);
  assert.deepEqual(events[2]!.data.cancelled, [info.id]);
});

test('cancelPaused (the daemon drain) ends the execs of paused sandboxes at once and leaves ready ones running', async () => {
  const corral = openCorral();
  const paused = corral.sandboxes.create({ backend: 'host', policy: 'permissive' });
  const ready = corral.sandboxes.create({ backend: 'host', policy: 'permissive' });
  const a = corral.execs.start(paused.id, { shell: LOOP, background: true });
  const b = corral.execs.start(ready.id, { shell: LOOP, background: true });
  await until('both running', () => stdoutBytes(corral, a.info.id) > 0 && stdoutBytes(corral, b.info.id) > 0);
  await corral.lifecycle.pause(paused.id);
  await corral.lifecycle.cancelPaused();
  assert.notEqual(corral.execs.get(a.info.id).state, 'running');
  assert.equal(corral.execs.get(b.info.id).state, 'running');
  assert.equal(corral.sandboxes.get(paused.id).state, 'paused');
  corral.execs.kill(b.info.id);
  await b.done;
});
