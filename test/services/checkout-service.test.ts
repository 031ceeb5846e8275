import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCorral, tempDir } from '../helpers.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import type { Corral } from '../../src/services/corral.ts';

const enc = new TextEncoder();
const SECRET = 'secret outside the checkout';

function seeded(): Corral {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a.txt', enc.encode('alpha\n'));
  c.files.write('v', '/b.txt', enc.encode('beta\n'));
  c.files.write('v', '/bin/run.sh', enc.encode('#!/bin/sh\n'), { mode: 0o755 });
  c.files.symlink('v', '../a.txt', '/bin/a-link');
  return c;
}

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isCorralError(e) && e.code === code);
}

const brief = (changes: { change: string; kind: string; path: string }[]): string[] => changes.map((ch) => `${ch.change} ${ch.kind} ${ch.path}`);

test('checkout writes the vault with modes and links; status and commit report exact changes; -p gives a diff', () => {
  const c = seeded();
  const dir = join(tempDir('corral-co-'), 'work');
  const r = c.checkouts.checkout('v', dir);
  assert.deepEqual([r.files, r.symlinks, r.vault, r.commit], [3, 1, 'v', c.store.getVault('v').head]);
  assert.equal(lstatSync(join(dir, 'bin/run.sh')).mode & 0o777, 0o755);
  assert.equal(readlinkSync(join(dir, 'bin/a-link')), '../a.txt');
  assert.deepEqual(c.checkouts.status(dir).summary, []);

  writeFileSync(join(dir, 'a.txt'), 'alpha\nmore\n');
  rmSync(join(dir, 'b.txt'));
  writeFileSync(join(dir, 'new.txt'), 'new\n');
  chmodSync(join(dir, 'bin/run.sh'), 0o700);
  symlinkSync('/etc/shadow', join(dir, 'shadow'));
  const st = c.checkouts.status(dir);
  assert.deepEqual(brief(st.summary), ['modified file /a.txt', 'deleted file /b.txt', 'modified file /bin/run.sh', 'added file /new.txt', 'added symlink /shadow']);
  assert.equal(c.store.getVault('v').head, r.commit, 'status commits nothing');

  const done = c.checkouts.commit(dir, 'edit in the checkout', { patch: true });
  assert.ok(done.commit);
  assert.deepEqual(done.changes, st.summary);
  const a = done.changes.find((ch) => ch.path === '/a.txt')!;
  assert.deepEqual([a.size, a.oldSize], [11, 6]);
  const run = done.changes.find((ch) => ch.path === '/bin/run.sh')!;
  assert.deepEqual([run.mode, run.oldMode], [0o700, 0o755]);
  assert.equal(done.changes.find((ch) => ch.path === '/shadow')!.target, '/etc/shadow');
  assert.match(done.patch!, /--- a\/a.txt\n\+\+\+ b\/a.txt\n@@ -1,1 \+1,2 @@\n alpha\n\+more\n/);
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/a.txt')), 'alpha\nmore\n');
  assert.equal(c.files.stat('v', '/shadow').target, '/etc/shadow');
  assert.equal(c.checkouts.find(dir)!.base, done.commit.id);
  assert.deepEqual(c.checkouts.status(dir).summary, []);
  assert.equal(c.checkouts.commit(dir, 'nothing').commit, null);
});

test('checkout refuses a non-empty directory, a second checkout of the same or an overlapping one, and the Corral home', () => {
  const c = seeded();
  const base = tempDir('corral-co-');
  const full = join(base, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'x'), 'x');
  throwsCode(() => c.checkouts.checkout('v', full), 'DIRECTORY_NOT_EMPTY');
  const dir = join(base, 'work');
  c.checkouts.checkout('v', dir);
  throwsCode(() => c.checkouts.checkout('v', dir), 'PATH_EXISTS');
  throwsCode(() => c.checkouts.checkout('v', join(dir, 'bin', 'nested')), 'INVALID_ARGUMENT');
  throwsCode(() => c.checkouts.checkout('v', join(c.store.home, 'x')), 'INVALID_ARGUMENT');
  throwsCode(() => c.checkouts.status(full), 'CHECKOUT_NOT_FOUND');
  // --force over an existing checkout checks it out again.
  c.files.write('v', '/c.txt', enc.encode('c'));
  c.checkouts.checkout('v', dir, { force: true });
  assert.equal(readFileSync(join(dir, 'c.txt'), 'utf8'), 'c');
  assert.deepEqual(c.checkouts.status(dir).summary, []);
});

test('a symlink planted in the target directory is never written through (checkout --force)', () => {
  const c = seeded();
  const base = tempDir('corral-co-');
  const outside = join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'a.txt'), SECRET);
  for (const [name, target] of [['bin', outside], ['a.txt', join(outside, 'a.txt')]] as const) {
    const dir = join(base, `planted-${name}`);
    mkdirSync(dir);
    symlinkSync(target, join(dir, name));
    throwsCode(() => c.checkouts.checkout('v', dir, { force: true }), 'UNSAFE_HOST_PATH');
    assert.equal(c.checkouts.find(dir), undefined, 'nothing registered');
  }
  assert.deepEqual(readdirSync(outside), ['a.txt']);
  assert.equal(readFileSync(join(outside, 'a.txt'), 'utf8'), SECRET);
});

test('a directory swapped for a symlink between scan and read: nothing outside is read', () => {
  const c = seeded();
  const base = tempDir('corral-co-');
  const outside = join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'f'), SECRET);
  const dir = join(base, 'work');
  c.checkouts.checkout('v', dir);
  mkdirSync(join(dir, 'd'));
  writeFileSync(join(dir, 'd/f'), 'mine');
  const warmLike = c.checkouts.find(dir)!;
  const set = c.checkouts.scan(warmLike.id);
  assert.ok(set.changes.some((ch) => ch.op === 'file' && ch.path === '/d/f'));
  renameSync(join(dir, 'd'), join(dir, 'd.old'));
  symlinkSync(outside, join(dir, 'd'));
  const head = c.store.getVault('v').head;
  throwsCode(() => c.checkouts.commitChanges('v', set, { message: 'race', op: 'test.commit' }), 'UNSAFE_HOST_PATH');
  assert.equal(c.store.getVault('v').head, head, 'nothing committed');
  // Committed from scratch, the swapped-in link is a link: stored as one, never followed.
  const done = c.checkouts.commit(dir, 'after the swap');
  assert.deepEqual(brief(done.changes), ['added symlink /d', 'added file /d.old/f']);
  assert.ok(!new TextDecoder().decode(c.files.cat('v', '/d.old/f')).includes(SECRET));
});

test('a concurrent change in the vault: overlapping paths give CONFLICT, others are merged and brought into the checkout', () => {
  const c = seeded();
  const dir = join(tempDir('corral-co-'), 'work');
  c.checkouts.checkout('v', dir);
  c.files.write('v', '/a.txt', enc.encode('changed in the vault\n'));
  writeFileSync(join(dir, 'a.txt'), 'changed in the checkout\n');
  writeFileSync(join(dir, 'b.txt'), 'beta 2\n');
  assert.deepEqual(c.checkouts.status(dir).conflicts, ['/a.txt']);
  const head = c.store.getVault('v').head;
  assert.throws(
    () => c.checkouts.commit(dir, 'clash'),
    (e: unknown) => isCorralError(e, 'CONFLICT') && /\/a\.txt/.test(e.message) && (e.details.paths as string[]).join() === '/a.txt',
  );
  assert.equal(c.store.getVault('v').head, head);

  // Without the clash: the checkout's change goes onto the moved head, the vault's comes into the directory.
  writeFileSync(join(dir, 'a.txt'), 'changed in the vault\n');
  c.files.write('v', '/bin/other.txt', enc.encode('other\n'));
  const done = c.checkouts.commit(dir, 'merge');
  assert.deepEqual(brief(done.changes), ['modified file /b.txt']);
  assert.equal(readFileSync(join(dir, 'bin/other.txt'), 'utf8'), 'other\n');
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/bin/other.txt')), 'other\n');
  assert.deepEqual(c.checkouts.status(dir).summary, []);

  // A whole directory deleted here while the vault changed a file in it: a conflict at the directory.
  c.files.write('v', '/bin/run.sh', enc.encode('#!/bin/sh\necho v\n'));
  rmSync(join(dir, 'bin'), { recursive: true });
  throwsCode(() => c.checkouts.commit(dir, 'rm bin'), 'CONFLICT');
});

test('the warm checkout syncs incrementally: unchanged files keep their inodes', () => {
  const c = seeded();
  const w1 = c.checkouts.warm('v');
  assert.ok(w1.dir.startsWith(join(c.store.home, 'checkouts')));
  const inoB = lstatSync(join(w1.dir, 'b.txt')).ino;
  c.files.write('v', '/a.txt', enc.encode('alpha 2\n'));
  c.files.rm('v', '/bin', { recursive: true });
  c.files.mkdir('v', '/empty');
  const w2 = c.checkouts.warm('v');
  assert.equal(w2.id, w1.id);
  assert.equal(w2.dir, w1.dir);
  assert.equal(w2.base, c.store.getVault('v').head);
  assert.equal(readFileSync(join(w2.dir, 'a.txt'), 'utf8'), 'alpha 2\n');
  assert.equal(existsSync(join(w2.dir, 'bin')), false);
  assert.ok(lstatSync(join(w2.dir, 'empty')).isDirectory());
  assert.equal(lstatSync(join(w2.dir, 'b.txt')).ino, inoB, 'an unchanged file is not rewritten');
  assert.deepEqual(c.checkouts.scan(w2.id).changes, []);
});

test('syncTo throws away whatever an in-place exec wrote, without following its symlinks', () => {
  const c = seeded();
  const outside = tempDir('corral-co-outside-');
  writeFileSync(join(outside, 'keep'), SECRET);
  const w = c.checkouts.warm('v');
  const script = `printf x > a.txt && rm b.txt && echo new > new && mkfifo fifo && rm -rf bin && ln -s '${outside}' bin && mkdir -p deep/er && chmod 700 deep`;
  assert.equal(spawnSync('sh', ['-c', script], { cwd: w.dir }).status, 0);
  assert.ok(c.checkouts.scan(w.id).changes.length > 0);
  c.checkouts.syncTo(w.id, w.base);
  assert.deepEqual(c.checkouts.scan(w.id), { changes: [], skipped: [] });
  assert.deepEqual(readdirSync(w.dir).sort(), ['a.txt', 'b.txt', 'bin']);
  assert.ok(lstatSync(join(w.dir, 'bin')).isDirectory());
  assert.equal(readFileSync(join(w.dir, 'a.txt'), 'utf8'), 'alpha\n');
  assert.deepEqual(readdirSync(outside), ['keep']);
  assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), SECRET);
});

test('remove unregisters; a warm checkout directory goes, a user checkout keeps its files', () => {
  const c = seeded();
  const w = c.checkouts.warm('v');
  const dir = join(tempDir('corral-co-'), 'work');
  c.checkouts.checkout('v', dir);
  assert.equal(c.checkouts.list('v').length, 2);
  c.checkouts.remove(w.dir);
  c.checkouts.remove(dir);
  assert.equal(existsSync(w.dir), false);
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'alpha\n');
  assert.deepEqual(c.checkouts.list(), []);
  throwsCode(() => c.checkouts.commit(dir, 'x'), 'CHECKOUT_NOT_FOUND');
});

test('a checkout of an older version: ref, then a commit onto the head (non-overlapping)', () => {
  const c = seeded();
  const first = c.store.getVault('v').head;
  c.files.write('v', '/later.txt', enc.encode('later'));
  const dir = join(tempDir('corral-co-'), 'old');
  const r = c.checkouts.checkout('v', dir, { ref: first });
  assert.equal(r.commit, first);
  assert.equal(existsSync(join(dir, 'later.txt')), false);
  writeFileSync(join(dir, 'mine.txt'), 'mine');
  const done = c.checkouts.commit(dir, 'on top');
  assert.deepEqual(brief(done.changes), ['added file /mine.txt']);
  assert.equal(readFileSync(join(dir, 'later.txt'), 'utf8'), 'later');
});
