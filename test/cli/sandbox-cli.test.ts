// corral sandbox … and corral shell: the same output and exit codes whether a daemon runs (the
// commands go through it with the SDK) or not (the work is done in the CLI's own process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corral, tempDir } from '../helpers.ts';

function run(home: string, daemon: boolean) {
  assert.equal(corral(home, ['vault', 'create', 'app']).code, 0);
  assert.equal(corral(home, ['write', '--vault', 'app', '/a.txt', 'alpha']).code, 0);
  const created = corral(home, ['sandbox', 'create', '--vault', 'app', '--name', 'web', '--backend', 'namespace', '--policy', 'permissive', '--label', 'team=a', '--json']);
  assert.equal(created.code, 0, created.stderr);
  const exec = corral(home, ['sandbox', 'exec', 'web', '--shell', 'cat a.txt; echo; echo out; echo err >&2; echo new > b.txt; exit 4']);
  const json = corral(home, ['sandbox', 'exec', 'web', '--json', '--', 'cat', 'b.txt']);
  const shell = corral(home, ['shell', 'web', '--cmd', 'sh'], { input: 'cat b.txt; exit 6\n' });
  const list = corral(home, ['sandbox', 'list', '--label', 'team=a', '--json']);
  // Tar streams both ways: down from the sandbox, up into another directory of it.
  const tarFile = `${home}/down.tar`;
  const down = corral(home, ['sandbox', 'download', 'web', '/', '--tar', tarFile, '--json']);
  const up = corral(home, ['sandbox', 'upload', 'web', tarFile, '/copy', '--json']);
  const copied = corral(home, ['sandbox', 'exec', 'web', '--', 'cat', 'copy/b.txt']);
  const missing = corral(home, ['sandbox', 'show', 'nope']);
  const bad = corral(home, ['sandbox', 'exec', 'web']);
  const destroyed = corral(home, ['sandbox', 'destroy', 'web', '--json']);
  return { daemon, created: created.json, exec, json, shell, list, missing, bad, destroyed, down, up, copied };
}

test('sandbox create/exec/list/show/destroy and shell: the same with and without a daemon', async () => {
  const local = run(tempDir(), false);

  const home = tempDir();
  const started = corral(home, ['daemon', 'start', '--json']);
  assert.equal(started.code, 0, started.stderr);
  let viaDaemon: ReturnType<typeof run>;
  try {
    viaDaemon = run(home, true);
  } finally {
    corral(home, ['daemon', 'stop']);
  }
  for (const r of [local, viaDaemon]) {
    const where = r.daemon ? 'via the daemon' : 'in process';
    assert.equal(r.created.name, 'web', where);
    assert.equal(r.exec.code, 4, `${where}: ${r.exec.stderr}`);
    assert.equal(r.exec.stdout, 'alpha\nout\n', where);
    assert.match(r.exec.stderr, /^err\n/, where);
    assert.match(r.exec.stderr, /1 added/, where);
    assert.equal(r.json.code, 0, where);
    assert.equal(r.json.json.stdout, 'new\n', where);
    assert.equal(r.json.json.status, 'completed', where);
    assert.equal(r.shell.code, 6, `${where}: ${r.shell.stderr}`);
    assert.match(r.shell.stdout, /new/, where);
    assert.deepEqual(r.list.json.sandboxes.map((s: { name: string }) => s.name), ['web'], where);
    assert.equal(r.missing.code, 3, where);
    assert.match(r.missing.stderr, /SANDBOX_NOT_FOUND/, where);
    assert.equal(r.bad.code, 2, where);
    assert.equal(r.destroyed.json.state, 'destroyed', where);
    assert.equal(r.down.code, 0, `${where}: ${r.down.stderr}`);
    assert.ok(r.down.json.bytes > 0, where);
    assert.equal(r.up.code, 0, `${where}: ${r.up.stderr}`);
    assert.equal(r.up.json.files, 2, where);
    assert.equal(r.copied.stdout, 'new\n', where);
  }
  assert.equal(local.exec.stdout, viaDaemon.exec.stdout);
  assert.equal(local.missing.stderr, viaDaemon.missing.stderr);
});
