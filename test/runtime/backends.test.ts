// The backend interface: probe, the registry's choice, suspend/resume, destroy, usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendRegistry, unenforceable, type ExecSpec } from '../../src/runtime/backend.ts';
import { HostBackend } from '../../src/runtime/host-backend.ts';
import { NamespaceBackend } from '../../src/runtime/namespace-backend.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
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
