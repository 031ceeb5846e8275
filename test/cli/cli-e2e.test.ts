// The CLI as outside scripts use it: the exact command forms of the issue, --json shapes, exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, corral, tempDir } from '../helpers.ts';

test('the documented command forms work end to end', () => {
  const home = tempDir();
  const run = (...args: string[]) => {
    const r = corral(home, args);
    assert.equal(r.code, 0, `corral ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r;
  };
  run('vault', 'create', 'demo');
  run('vault', 'use', 'demo');
  run('write', '/src/app.js', 'console.log(1)\n');
  assert.equal(corral(home, ['write', '/notes.txt'], { input: 'from stdin\n' }).code, 0);
  assert.equal(run('cat', '/notes.txt').stdout, 'from stdin\n');
  run('checkpoint', 'save', 'base');
  run('write', '/src/app.js', 'console.log(2)\n');
  run('rm', '/notes.txt');
  run('mkdir', '-p', '/tmp/x/y');
  run('rm', '-r', '/tmp');
  assert.deepEqual(run('ls', '/', '--json').json.entries.map((e: { name: string }) => e.name), ['src']);

  const diff = run('diff', 'base', 'HEAD', '--json').json;
  assert.deepEqual(
    diff.changes.map((c: { path: string; change: string }) => [c.path, c.change]),
    [['/notes.txt', 'deleted'], ['/src/app.js', 'modified']],
  );
  assert.deepEqual(diff.summary, { added: 0, modified: 1, deleted: 1, bytesAdded: 15, bytesRemoved: 26 });
  const patch = run('diff', 'base', 'HEAD', '-p').stdout;
  assert.match(patch, /-console\.log\(1\)/);
  assert.match(patch, /\+console\.log\(2\)/);

  run('vault', 'fork', 'demo', 'exp');
  run('--vault', 'exp', 'write', '/only-in-fork', 'x');
  assert.equal(corral(home, ['cat', '/only-in-fork']).code, 3);
  const info = run('vault', 'info', 'exp', '--json').json;
  assert.equal(info.parent, 'demo');
  assert.equal(typeof info.forkedFrom, 'string');

  const restore = run('checkpoint', 'restore', 'base', '--json').json;
  assert.equal(run('cat', '/notes.txt').stdout, 'from stdin\n');
  assert.equal(run('cat', '/src/app.js').stdout, 'console.log(1)\n');
  // The state before the restore is reachable: restoring it undoes the restore.
  run('checkpoint', 'restore', restore.previous);
  assert.equal(run('cat', '/src/app.js').stdout, 'console.log(2)\n');

  const log = run('log', '--json').json.commits;
  assert.deepEqual(log.slice(0, 2).map((c: { origin: string }) => c.origin), ['restore', 'restore']);
  assert.equal(log.at(-1).message, 'create vault');
  const verify = run('audit', 'verify', '--json').json;
  assert.equal(verify.ok, true);
  assert.ok(verify.records >= 12);
});

test('--json errors use the envelope and exit codes depend on the error class', () => {
  const home = tempDir();
  const noVault = corral(home, ['ls', '/', '--json']);
  assert.equal(noVault.code, 2);
  assert.equal(noVault.json.error.code, 'NO_VAULT_SELECTED');
  assert.match(noVault.json.error.message, /corral vault create NAME/);
  assert.equal(corral(home, ['vault', 'create', 'v']).code, 0);
  const missing = corral(home, ['--vault', 'v', 'cat', '/nope', '--json']);
  assert.equal(missing.code, 3);
  assert.deepEqual(Object.keys(missing.json.error).sort(), ['code', 'details', 'message']);
  assert.equal(missing.json.error.code, 'PATH_NOT_FOUND');
  const exists = corral(home, ['vault', 'create', 'v', '--json']);
  assert.equal(exists.code, 4);
  assert.equal(exists.json.error.code, 'VAULT_EXISTS');
  const usage = corral(home, ['vault', 'create', '--json']);
  assert.equal(usage.code, 2);
  assert.equal(usage.json.error.code, 'INVALID_ARGUMENT');
  const human = corral(home, ['--vault', 'v', 'cat', '/nope']);
  assert.equal(human.stdout, '');
  assert.match(human.stderr, /PATH_NOT_FOUND/);
});

test('vault lifecycle: list, rename, delete needs --yes', () => {
  const home = tempDir();
  for (const n of ['a', 'b']) assert.equal(corral(home, ['vault', 'create', n]).code, 0);
  assert.equal(corral(home, ['vault', 'use', 'a']).code, 0);
  assert.deepEqual(corral(home, ['vault', 'list', '--json']).json.vaults.map((v: { name: string; current: boolean }) => [v.name, v.current]), [['a', true], ['b', false]]);
  assert.equal(corral(home, ['vault', 'rename', 'a', 'c']).code, 0);
  assert.equal(corral(home, ['vault', 'info', '--json']).json.name, 'c');
  const refused = corral(home, ['vault', 'delete', 'c', '--json']);
  assert.equal(refused.json.error.code, 'CONFIRMATION_REQUIRED');
  assert.equal(corral(home, ['vault', 'delete', 'c', '--yes']).code, 0);
  assert.deepEqual(corral(home, ['vault', 'list', '--json']).json.vaults.map((v: { name: string }) => v.name), ['b']);
  assert.equal(corral(home, ['ls', '--json']).json.error.code, 'NO_VAULT_SELECTED');
});

test('every command has --help with a description', () => {
  const home = tempDir();
  const top = corral(home, ['--help']);
  assert.equal(top.code, 0);
  for (const cmd of ['vault', 'ls', 'cat', 'write', 'mkdir', 'rm', 'cp', 'mv', 'tree', 'stat', 'touch', 'log', 'show', 'diff', 'revert', 'checkpoint', 'audit', 'quota'])
    assert.match(top.stdout, new RegExp(`\\n  ${cmd}\\b`), `${cmd} missing from --help`);
  const write = corral(home, ['write', '--help']);
  assert.equal(write.code, 0);
  assert.match(write.stdout, /Examples:/);
});

test('import, export and stats in their documented forms', () => {
  const home = tempDir();
  const out = join(tempDir(), 'exported');
  assert.equal(corral(home, ['vault', 'create', 'v', '--use']).code, 0);
  const imp = corral(home, ['import', join(ROOT, 'examples', 'sample-project'), '/proj', '--json']);
  assert.equal(imp.code, 0, imp.stderr + imp.stdout);
  assert.equal(imp.json.files, 5);
  assert.equal(imp.json.symlinks, 1);
  const exp = corral(home, ['export', '/proj', out, '--json']);
  assert.equal(exp.code, 0, exp.stderr + exp.stdout);
  assert.equal(readFileSync(join(out, 'src', 'parse.js'), 'utf8'), readFileSync(join(ROOT, 'examples', 'sample-project', 'src', 'parse.js'), 'utf8'));
  assert.equal(readlinkSync(join(out, 'main.js')), 'src/app.js');
  assert.equal(statSync(join(out, 'scripts', 'build.sh')).mode & 0o777, 0o755);
  const stats = corral(home, ['stats', '--json']);
  assert.equal(stats.code, 0, stats.stderr);
  assert.match(corral(home, ['stats']).stdout, /5 files, \d+ directories, 1 symlink/);
});
