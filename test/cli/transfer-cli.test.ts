import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { pack as tarPack } from 'tar-stream';
import { CLI, ROOT, corral, tempDir } from '../helpers.ts';

function hostTree(): string {
  const root = join(tempDir('corral-cli-transfer-'), 'tree');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'docs/empty'), { recursive: true });
  writeFileSync(join(root, 'bin/tool'), '#!/bin/sh\necho tool\n');
  chmodSync(join(root, 'bin/tool'), 0o755);
  writeFileSync(join(root, 'docs/readme.md'), '# readme\n');
  symlinkSync('../bin/tool', join(root, 'docs/tool-link'));
  symlinkSync('/etc/hostname', join(root, 'abs'));
  return root;
}

function ok(r: { code: number; stderr: string; stdout: string }): void {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}${r.stdout}`);
}

test('import and export a host directory through the CLI: summary line, JSON result, notes on stderr', () => {
  const home = tempDir();
  const root = hostTree();
  ok(corral(home, ['vault', 'create', 'a', '--use']));
  const imp = corral(home, ['import', root, '/proj']);
  ok(imp);
  assert.match(imp.stdout, /^imported 2 files, 3 dirs, 2 symlinks \(\d+ B\) into \/proj \(commit [0-9a-f]{12}\)\n$/);
  assert.match(imp.stderr, /\/proj\/abs -> \/etc\/hostname points outside/);

  const again = corral(home, ['import', root, '/proj', '--json']);
  ok(again);
  assert.equal(again.json.commit, null, 'the same tree again changes nothing');
  assert.equal(again.json.files, 2);
  assert.equal(again.stderr, '', '--json keeps stderr quiet');

  const out = join(tempDir(), 'out');
  const exp = corral(home, ['export', '/proj', out]);
  ok(exp);
  assert.match(exp.stdout, /^exported 2 files, 3 dirs, 2 symlinks .* from \/proj to /);
  assert.equal(lstatSync(join(out, 'bin/tool')).mode & 0o777, 0o755);
  assert.equal(readlinkSync(join(out, 'docs/tool-link')), '../bin/tool');
  assert.equal(readlinkSync(join(out, 'abs')), '/etc/hostname');
  assert.equal(lstatSync(join(out, 'docs/empty')).isDirectory(), true);

  const refused = corral(home, ['export', '/proj', out, '--json']);
  assert.equal(refused.code, 4);
  assert.equal(refused.json.error.code, 'DIRECTORY_NOT_EMPTY');
  const missing = corral(home, ['import', join(root, 'nope'), '--json']);
  assert.equal(missing.json.error.code, 'PATH_NOT_FOUND');
});

test('export --tar - piped into import --tar - in another vault keeps modes and links', () => {
  const home = tempDir();
  const root = hostTree();
  ok(corral(home, ['vault', 'create', 'a']));
  ok(corral(home, ['vault', 'create', 'b']));
  ok(corral(home, ['--vault', 'a', 'import', root]));
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${CLI}" --vault a export / --tar - | "${CLI}" --vault b import --tar - /copy --json`], {
    cwd: ROOT,
    env: { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '', NO_COLOR: '1' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.deepEqual({ files: result.files, dirs: result.dirs, symlinks: result.symlinks }, { files: 2, dirs: 3, symlinks: 2 });
  assert.match(r.stderr, /exported 2 files, 3 dirs, 2 symlinks/);

  const tool = corral(home, ['--vault', 'b', 'stat', '/copy/bin/tool', '--json']);
  assert.equal(tool.json.mode, 0o755);
  assert.equal(corral(home, ['--vault', 'b', 'cat', '/copy/bin/tool']).stdout, '#!/bin/sh\necho tool\n');
  assert.equal(corral(home, ['--vault', 'b', 'stat', '/copy/docs/tool-link', '--json']).json.target, '../bin/tool');
  assert.equal(corral(home, ['--vault', 'b', 'stat', '/copy/abs', '--json']).json.target, '/etc/hostname');

  // To a file too, refusing to replace it without --force.
  const file = join(tempDir(), 'a.tar');
  ok(corral(home, ['--vault', 'a', 'export', '/', '--tar', file]));
  assert.ok(readFileSync(file).length >= 512 * 8);
  assert.equal(corral(home, ['--vault', 'a', 'export', '/', '--tar', file, '--json']).json.error.code, 'PATH_EXISTS');
});

test('a hostile tar on stdin is refused with INVALID_PATH and nothing changes', async () => {
  const home = tempDir();
  ok(corral(home, ['vault', 'create', 'a', '--use']));
  const pack = tarPack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  pack.entry({ name: 'fine.txt' }, Buffer.from('ok'));
  pack.entry({ name: '../../etc/cron.d/x' }, Buffer.from('pwned'));
  pack.finalize();
  await done;
  const r = corral(home, ['import', '--tar', '-', '/', '--json'], { input: Buffer.concat(chunks) });
  assert.equal(r.code, 2);
  assert.equal(r.json.error.code, 'INVALID_PATH');
  assert.equal(corral(home, ['log', '--json']).json.commits.length, 1);
  assert.deepEqual(corral(home, ['ls', '/', '--json']).json.entries, []);
});

test('bundle export and import between two homes; audit verify stays clean in both', () => {
  const homeA = tempDir();
  const homeB = tempDir();
  ok(corral(homeA, ['vault', 'create', 'proj', '--use']));
  ok(corral(homeA, ['write', '/a.txt', 'one']));
  ok(corral(homeA, ['checkpoint', 'save', 'v1', '-m', 'first']));
  ok(corral(homeA, ['write', '/a.txt', 'two']));
  const file = join(tempDir(), 'proj.corral');
  const exp = corral(homeA, ['bundle', 'export', file]);
  ok(exp);
  assert.match(exp.stdout, /^exported vault proj to .*: \d+ commits, 1 checkpoints/);
  ok(corral(homeA, ['bundle', 'export', 'proj', file, '--force']));

  const imp = corral(homeB, ['bundle', 'import', file, '--json']);
  ok(imp);
  assert.equal(imp.json.vault, 'proj');
  assert.equal(corral(homeB, ['--vault', 'proj', 'cat', '/a.txt']).stdout, 'two');
  assert.equal(corral(homeB, ['--vault', 'proj', 'cat', '/a.txt', '--rev', 'v1']).stdout, 'one');
  assert.deepEqual(corral(homeB, ['--vault', 'proj', 'log', '--json']).json, corral(homeA, ['--vault', 'proj', 'log', '--json']).json);

  const dup = corral(homeB, ['bundle', 'import', file, '--json']);
  assert.equal(dup.json.error.code, 'VAULT_EXISTS');
  ok(corral(homeB, ['bundle', 'import', file, '--name', 'proj2']));
  for (const home of [homeA, homeB]) {
    const v = corral(home, ['audit', 'verify', '--json']);
    ok(v);
    assert.equal(v.json.ok, true);
  }
});

test('every transfer command has --help with examples', () => {
  const home = tempDir();
  for (const args of [['import'], ['export'], ['bundle'], ['bundle', 'export'], ['bundle', 'import']]) {
    const r = corral(home, [...args, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Examples:\n\s+\$ corral /, args.join(' '));
  }
});

test('export --tar FILE that fails leaves no file behind, and --force replaces the name, not a hard-linked twin', () => {
  const home = tempDir();
  ok(corral(home, ['vault', 'create', 'a', '--use']));
  ok(corral(home, ['write', '/a.bin'], { input: 'x'.repeat(200_000) }));
  ok(corral(home, ['write', '/b.txt', 'second file']));
  // A missing blob makes the export fail after the first file is already written.
  const hash = corral(home, ['stat', '/b.txt', '--json']).json.hash as string;
  const db = new DatabaseSync(join(home, 'corral.db'));
  db.prepare('DELETE FROM blobs WHERE hash = ?').run(hash);
  db.close();

  const dir = tempDir();
  const file = join(dir, 'out.tar');
  const failed = corral(home, ['export', '/', '--tar', file, '--json']);
  assert.notEqual(failed.code, 0);
  assert.equal(failed.json.error.code, 'STORAGE_CORRUPT');
  assert.deepEqual(readdirSync(dir), [], 'neither the tar nor a temp file is left');

  ok(corral(home, ['write', '/b.txt', 'second file']));
  ok(corral(home, ['export', '/', '--tar', file]));
  const first = readFileSync(file);
  assert.ok(first.includes(Buffer.from('second file')));
  assert.equal(corral(home, ['export', '/', '--tar', file, '--json']).json.error.code, 'PATH_EXISTS');

  const twin = join(dir, 'twin.tar');
  linkSync(file, twin);
  ok(corral(home, ['write', '/c.txt', 'third file']));
  ok(corral(home, ['export', '/', '--tar', file, '--force']));
  assert.ok(readFileSync(file).includes(Buffer.from('third file')));
  assert.deepEqual(readFileSync(twin), first, 'the hard-linked twin keeps its content');
  assert.notEqual(statSync(file).ino, statSync(twin).ino);
  assert.deepEqual(readdirSync(dir).sort(), ['out.tar', 'twin.tar']);
  assert.equal(corral(home, ['export', '/', '--tar', dir, '--force', '--json']).json.error.code, 'IS_A_DIRECTORY');
});
