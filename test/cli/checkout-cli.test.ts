import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { corral, tempDir } from '../helpers.ts';

function ok(r: { code: number; stderr: string; stdout: string }): void {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}${r.stdout}`);
}

test('checkout, status, commit -p through the CLI: human lines, JSON, notes on stderr', () => {
  const home = tempDir();
  const dir = join(tempDir('corral-cli-co-'), 'work');
  ok(corral(home, ['vault', 'create', 'a', '--use']));
  ok(corral(home, ['write', '/readme.md', '# hi\n']));
  ok(corral(home, ['write', '/old.txt', 'old\n']));

  const co = corral(home, ['checkout', dir]);
  ok(co);
  assert.match(co.stdout, /^checked out vault a at [0-9a-f]{12} into .*work: 2 files, 0 symlinks, 0 dirs \(\d+ B\)\n$/);
  assert.equal(readFileSync(join(dir, 'readme.md'), 'utf8'), '# hi\n');
  const clean = corral(home, ['status', dir]);
  ok(clean);
  assert.match(clean.stdout, /nothing changed/);

  writeFileSync(join(dir, 'readme.md'), '# hi\nthere\n');
  rmSync(join(dir, 'old.txt'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src/main.sh'), 'echo main\n');
  chmodSync(join(dir, 'src/main.sh'), 0o755);
  symlinkSync('/etc/shadow', join(dir, 'escape'));
  writeFileSync(join(dir, 'bad\x1b[31mname'), 'x');

  const st = corral(home, ['status', dir, '--json']);
  ok(st);
  assert.deepEqual(
    st.json.summary.map((c: { change: string; path: string }) => `${c.change} ${c.path}`),
    ['added /bad\x1b[31mname', 'added /escape', 'deleted /old.txt', 'modified /readme.md', 'added /src/main.sh'],
  );
  const human = corral(home, ['status', dir]);
  ok(human);
  assert.match(human.stdout, /^A \/bad\\x1b\[31mname/m, 'control characters are escaped');
  assert.match(human.stdout, /^A \/escape {2}-> \/etc\/shadow$/m);
  assert.match(human.stdout, /^D \/old\.txt/m);
  assert.match(human.stdout, /^M \/readme\.md {2}5 B -> 11 B$/m);

  const cm = corral(home, ['commit', dir, '-m', 'edit', '-p']);
  ok(cm);
  assert.match(cm.stdout, /^commit [0-9a-f]{12}: 3 added, 1 modified, 1 deleted\n/);
  assert.match(cm.stdout, /\+\+\+ b\/readme\.md\n@@ -1,1 \+1,2 @@\n # hi\n\+there\n/);
  const cat = corral(home, ['cat', '/src/main.sh']);
  assert.equal(cat.stdout, 'echo main\n');
  const stat = corral(home, ['stat', '/escape', '--json']);
  assert.equal(stat.json.target, '/etc/shadow');

  const again = corral(home, ['commit', dir, '-m', 'again', '--json']);
  ok(again);
  assert.equal(again.json.commit, null);
  assert.deepEqual(again.json.changes, []);
});

test('CLI errors: not a checkout, non-empty directory, missing message, conflict', () => {
  const home = tempDir();
  const base = tempDir('corral-cli-co-');
  ok(corral(home, ['vault', 'create', 'a']));
  ok(corral(home, ['--vault', 'a', 'write', '/f.txt', 'one\n']));
  const nope = corral(home, ['status', base, '--json']);
  assert.equal(nope.code, 3);
  assert.equal(nope.json.error.code, 'CHECKOUT_NOT_FOUND');
  writeFileSync(join(base, 'x'), 'x');
  const full = corral(home, ['checkout', 'a', base, '--json']);
  assert.equal(full.json.error.code, 'DIRECTORY_NOT_EMPTY');
  const dir = join(base, 'work');
  ok(corral(home, ['checkout', 'a', dir, '--json']));
  const noMsg = corral(home, ['commit', dir]);
  assert.equal(noMsg.code, 2);
  ok(corral(home, ['--vault', 'a', 'write', '/f.txt', 'two\n']));
  writeFileSync(join(dir, 'f.txt'), 'mine\n');
  const clash = corral(home, ['commit', dir, '-m', 'clash', '--json']);
  assert.equal(clash.code, 4);
  assert.equal(clash.json.error.code, 'CONFLICT');
  assert.deepEqual(clash.json.error.details.paths, ['/f.txt']);
  const st = corral(home, ['status', dir]);
  assert.match(st.stdout, /head has moved/);
  assert.match(st.stdout, /conflicts \(also changed in the vault\): \/f\.txt/);
});
