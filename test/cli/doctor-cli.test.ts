import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { corral, tempDir } from '../helpers.ts';
import { probeMachine } from '../../src/runtime/machine-probe.ts';

const bwrapWorks = spawnSync('bwrap', ['--unshare-all', '--ro-bind', '/', '/', 'true']).status === 0;

test('corral doctor --json: the report shape, and namespace available where bwrap works', () => {
  const home = tempDir();
  const r = corral(home, ['doctor', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = r.json;
  assert.equal(d.kind, 'corral.doctor');
  assert.equal(d.version, 1);
  assert.equal(d.backends.host.available, true);
  assert.ok(Array.isArray(d.backends.host.notes));
  assert.equal(typeof d.backends.namespace.available, 'boolean');
  assert.ok(['namespace', 'host'].includes(d.auto));
  assert.equal(d.auto, d.backends.namespace.available ? 'namespace' : 'host');
  const ids = d.checks.map((c: { id: string }) => c.id);
  for (const id of ['kernel', 'environment', 'bubblewrap', 'userns', 'bwrap-sandbox', 'overlay-userns', 'cgroups', 'seccomp', 'landlock', 'kvm', 'supervisor']) assert.ok(ids.includes(id), id);
  for (const c of d.checks) {
    assert.equal(typeof c.ok, 'boolean');
    assert.equal(typeof c.summary, 'string');
    if (!c.ok && !['landlock', 'kvm', 'environment'].includes(c.id)) assert.equal(typeof c.fix, 'string', `${c.id} has a fix`);
  }
  if (bwrapWorks) {
    assert.equal(d.backends.namespace.available, true, JSON.stringify(d.backends));
    assert.equal(d.auto, 'namespace');
  }
});

test('corral doctor prints one line per check, then the backends', () => {
  const r = corral(tempDir(), ['doctor']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[✓✗] bubblewrap\s+/m);
  assert.match(r.stdout, /^[✓✗] cgroups\s+/m);
  assert.match(r.stdout, /^auto picks: (namespace|host)$/m);
});

test('probeMachine reports a missing supervisor with a fix, and never throws', async () => {
  const r = await probeMachine({ supervisorPath: '/nonexistent/corral-run', scratchDir: '/nonexistent-dir' });
  const sup = r.checks.find((c) => c.id === 'supervisor')!;
  assert.equal(sup.ok, false);
  assert.match(sup.fix!, /make setup/);
  assert.equal(r.facts.overlayInUserns, false);
  assert.equal(r.checks.find((c) => c.id === 'overlay-userns')!.ok, false);
});
