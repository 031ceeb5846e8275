// The backend interface: probe, the registry's choice, suspend/resume, destroy, usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendRegistry, unenforceable, type ExecSpec } from '../../src/runtime/backend.ts';
import { HostBackend } from '../../src/runtime/host-backend.ts';
import { NamespaceBackend, readOwnFile } from '../../src/runtime/namespace-backend.ts';
import { CgroupSet } from '../../src/runtime/cgroups.ts';
import { CorralError, isCorralError } from '../../src/protocol/errors.ts';
import { tempDir } from '../helpers.ts';

const spec = (argv: string[], extra: Partial<ExecSpec> = {}): ExecSpec => ({ argv, cwd: '/', env: { PATH: '/usr/bin:/bin', SHLVL: '1' }, timeoutMs: 10_000, graceMs: 200, outputCap: 1 << 16, limits: {}, ...extra });

test('host capabilities say plainly that nothing is isolated', async () => {
  const caps = await new HostBackend().probe();
  assert.equal(caps.available, true);
  assert.deepEqual(caps.isolation, { filesystem: false, network: false, process: false, syscalls: false, user: false });
  assert.equal(caps.changeDetection, 'stat-index');
  assert.match(caps.notes.join(' '), /no isolation/);
  assert.deepEqual(unenforceable(caps, { tmpSizeBytes: 1 }), ['tmpSize']);
});

test('the registry picks namespace for auto here, and names what it cannot find', async () => {
  const registry = new BackendRegistry().register(new HostBackend()).register(new NamespaceBackend());
  const { backend, capabilities } = await registry.select('auto');
  assert.equal(backend.name, 'namespace');
  assert.equal(capabilities.isolation.syscalls, true);
  assert.equal((await registry.select('host')).backend.name, 'host');
  await assert.rejects(registry.select('vm' as never), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  const hostOnly = new BackendRegistry().register(new HostBackend());
  assert.equal((await hostOnly.select('auto')).backend.name, 'host');
  const probes = await registry.probeAll();
  assert.deepEqual(probes.map((p) => p.backend).sort(), ['host', 'namespace']);
});

for (const Backend of [HostBackend, NamespaceBackend])
  test(`${new Backend().name}: suspend stops every process of a running exec, resume continues it; usage counts them; destroy kills them`, async () => {
    const backend = new Backend();
    const sandbox = await backend.create({ checkout: tempDir(), readonly: true, network: false, limits: {}, bestEffort: false });
    let pid = 0;
    let supervisor = 0;
    const running = sandbox.exec(spec(['sh', '-c', 'while true; do sleep 0.05; done'], { onEvent: (e) => void (e.type === 'started' && ((pid = e.pid), (supervisor = e.supervisorPid))) }));
    while (!pid) await sleep(10);
    await sleep(100);
    const u = sandbox.usage();
    assert.ok(u.processes >= 2, `processes: ${u.processes}`);
    sandbox.suspend();
    await sleep(100);
    const state = (p: number): string => readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[0]!;
    assert.equal(state(pid), 'T', 'the exec is stopped');
    assert.notEqual(state(supervisor), 'T', 'its supervisor is not');
    sandbox.resume();
    await sleep(50);
    assert.notEqual(state(pid), 'T');
    await sandbox.destroy();
    const r = await running;
    assert.ok(r.signal === 'SIGKILL' || r.exitCode === 137 || r.exitCode === null, `${r.signal} ${r.exitCode}`);
    await assert.rejects(sandbox.exec(spec(['true'])), (e) => isCorralError(e, 'EXEC_FAILED'));
  });

test('host capabilities say a command can detach itself without a cgroup', async () => {
  assert.match((await new HostBackend().probe()).notes.join(' '), /without a cgroup.*detach itself/);
});

for (const Backend of [HostBackend, NamespaceBackend])
  test(`${new Backend().name}: the grace period reaches the command: its SIGTERM trap runs to the end`, async () => {
    const sandbox = await new Backend().create({ checkout: tempDir(), readonly: true, network: false, limits: {}, bestEffort: false });
    const script = 'trap "echo got TERM; sleep 0.2; echo cleaned; exit 0" TERM; echo ready; sleep 10 & wait';
    const r = await sandbox.exec(spec(['bash', '-c', script], { timeoutMs: 500, graceMs: 5000 }));
    assert.equal(r.timedOut, true);
    assert.equal(r.stdout.toString(), 'ready\ngot TERM\ncleaned\n');
    assert.equal(r.exitCode, 0);
  });

for (const Backend of [HostBackend, NamespaceBackend])
  test(`${new Backend().name}: --pids 1 lets exactly one process of the command run (Corral's own are added to the limit)`, async (t) => {
    const backend = new Backend();
    if (!(await backend.probe()).limits.pids) return t.skip('no writable pids cgroup here');
    const sandbox = await backend.create({ checkout: tempDir(), readonly: true, network: false, limits: { pids: 1 }, bestEffort: false });
    const one = await sandbox.exec(spec(['sh', '-c', 'echo one']));
    assert.equal(one.exitCode, 0, one.stderr.toString());
    assert.equal(one.stdout.toString(), 'one\n');
    const two = await sandbox.exec(spec(['sh', '-c', '/bin/true & wait; echo two']));
    assert.notEqual(two.exitCode, 0, 'a second process is refused');
    assert.match(two.stderr.toString(), /fork/i);
  });

test('a cgroup that cannot be removed becomes a warning: the result is kept', async (t) => {
  const backend = new HostBackend();
  if (!(await backend.probe()).limits.memory) return t.skip('no writable memory cgroup here');
  const sandbox = await backend.create({ checkout: tempDir(), readonly: true, network: false, limits: { memoryBytes: 256 * 1024 * 1024 }, bestEffort: false });
  const destroy = CgroupSet.prototype.destroyAsync;
  CgroupSet.prototype.destroyAsync = async function (this: CgroupSet) {
    await destroy.call(this); // really clean up, then fail as a busy group would
    throw new CorralError('EXEC_FAILED', 'cannot remove the cgroups x: processes are still in them');
  };
  try {
    const r = await sandbox.exec(spec(['sh', '-c', 'echo kept']));
    assert.equal(r.stdout.toString(), 'kept\n');
    assert.ok(r.warnings.some((w) => /cannot remove the cgroups/.test(w)), r.warnings.join('; '));
  } finally {
    CgroupSet.prototype.destroyAsync = destroy;
  }
});

test('the namespace probe cache is trusted only as a private regular file of ours', () => {
  const dir = tempDir();
  const file = join(dir, 'own');
  writeFileSync(file, 'x', { mode: 0o600 });
  assert.equal(readOwnFile(file), 'x');
  symlinkSync(file, join(dir, 'link'));
  assert.equal(readOwnFile(join(dir, 'link')), undefined, 'a symlink');
  writeFileSync(join(dir, 'loose'), 'x');
  chmodSync(join(dir, 'loose'), 0o666);
  assert.equal(readOwnFile(join(dir, 'loose')), undefined, 'writable by others');
  assert.equal(readOwnFile(join(dir, 'missing')), undefined);
  if (process.getuid?.() === 0) {
    chownSync(file, 65534, 65534);
    assert.equal(readOwnFile(file), undefined, 'someone else\'s');
  }
});

for (const Backend of [HostBackend, NamespaceBackend])
  test(`${new Backend().name}: a command ended by a timeout reports the signal, not an exit code`, async () => {
    const sandbox = await new Backend().create({ checkout: tempDir(), readonly: true, network: false, limits: {}, bestEffort: false });
    const r = await sandbox.exec(spec(['sleep', '5'], { timeoutMs: 300, graceMs: 2000 }));
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGTERM');
  });
