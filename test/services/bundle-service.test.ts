import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { copyFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCorral, tempDir } from '../helpers.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { encodeTree, sha256 } from '../../src/store/object-store.ts';
import type { Corral } from '../../src/services/corral.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A vault with history: commits, a fork point, checkpoints (one on an older commit), tags, metadata, a quota. */
function makeVault(c: Corral): void {
  c.vaults.create('base');
  c.files.write('base', '/shared.txt', enc('from base'));
  c.vaults.fork('base', 'proj');
  c.files.write('proj', '/src/main.py', enc('print("v1")\n'), { mode: 0o755 });
  c.files.symlink('proj', 'src/main.py', '/main');
  c.checkpoints.save('proj', 'first', 'the first version');
  c.files.write('proj', '/src/main.py', enc('print("v2")\n'));
  c.files.mkdir('proj', '/empty');
  // More than 32 entries: stored sharded, in several rows.
  for (let i = 0; i < 40; i++) c.files.write('proj', `/many/f${i}.txt`, enc(`file ${i}`));
  c.checkpoints.save('proj', 'second');
  c.files.write('proj', '/src/main.py', enc('print("v3")\n'));
  c.tags.add('proj', '/src/main.py', ['entry', 'python']);
  c.tags.metaSet('proj', '/src', 'owner', 'team-a');
  c.vaults.setQuota('proj', { maxBytes: 1_000_000, maxFiles: 1000, maxFileSize: null });
}

function commitsOf(c: Corral, vault: string): unknown[] {
  return c.history.log(vault, { limit: 1000 });
}

function attributes(c: Corral, vault: string): { tags: unknown[]; meta: unknown[] } {
  const id = c.store.getVault(vault).id;
  return {
    tags: c.store.db.all('SELECT path, tag FROM tags WHERE vault_id = ? ORDER BY path, tag', id),
    meta: c.store.db.all('SELECT path, key, value FROM path_meta WHERE vault_id = ? ORDER BY path, key', id),
  };
}

function expectInvalid(c: Corral, file: string, name?: string): void {
  const vaults = c.vaults.list().length;
  assert.throws(() => c.bundles.importBundle(file, { name }), (e: unknown) => isCorralError(e, 'BUNDLE_INVALID'));
  assert.equal(c.vaults.list().length, vaults, 'a refused bundle creates no vault');
}

test('a bundle round trip into another home is exact: commits, head, checkpoints, tags, metadata, files, quota', () => {
  const a = openCorral();
  makeVault(a);
  const file = join(tempDir(), 'proj.corral');
  const out = a.bundles.exportBundle('proj', file);
  assert.equal(out.vault, 'proj');
  assert.equal(out.checkpoints, 2);
  assert.equal(out.bytes, statSync(file).size);
  assert.ok(out.commits >= 7);
  assert.equal(a.store.audit.list({ op: 'bundle.export' }).length, 1);

  const b = openCorral();
  const r = b.bundles.importBundle(file);
  assert.equal(r.vault, 'proj');
  assert.equal(r.commits, out.commits);
  const va = a.store.getVault('proj');
  const vb = b.store.getVault('proj');
  assert.equal(vb.head, va.head);
  assert.equal(vb.parent, 'base');
  assert.equal(vb.forkedFrom, va.forkedFrom);
  assert.equal(vb.createdAt, va.createdAt);
  assert.deepEqual(vb.quota, va.quota);
  assert.deepEqual(commitsOf(b, 'proj'), commitsOf(a, 'proj'));
  assert.deepEqual(b.checkpoints.list('proj'), a.checkpoints.list('proj'));
  assert.deepEqual(attributes(b, 'proj'), attributes(a, 'proj'));
  assert.equal(dec(b.files.cat('proj', '/src/main.py')), 'print("v3")\n');
  assert.equal(dec(b.files.cat('proj', '/src/main.py', 'first')), 'print("v1")\n');
  assert.equal(b.files.stat('proj', '/main').target, 'src/main.py');
  assert.equal(b.files.stat('proj', '/src/main.py').mode, 0o755);
  assert.equal(b.store.resolveRef(vb, 'second').tree, a.store.resolveRef(va, 'second').tree);
  assert.equal(b.files.ls('proj', '/many').length, 40);
  assert.equal(dec(b.files.cat('proj', '/many/f39.txt')), 'file 39');
  // The new home can keep working on it.
  b.files.write('proj', '/after.txt', enc('more'));
  b.checkpoints.restore('proj', 'first');
  assert.equal(b.store.audit.list({ op: 'bundle.import' }).length, 1);
  assert.equal(a.store.audit.verify().ok, true);
  assert.equal(b.store.audit.verify().ok, true);

  // Importing again needs another name; --name gives one.
  assert.throws(() => b.bundles.importBundle(file), (e: unknown) => isCorralError(e, 'VAULT_EXISTS') && /--name/.test(e.message));
  const again = b.bundles.importBundle(file, { name: 'proj-copy' });
  assert.equal(again.vault, 'proj-copy');
  assert.equal(b.store.getVault('proj-copy').head, va.head);
  // An existing file is not replaced without force.
  assert.throws(() => a.bundles.exportBundle('proj', file), (e: unknown) => isCorralError(e, 'PATH_EXISTS'));
});

test('a corrupted, tampered or truncated bundle is refused with BUNDLE_INVALID and changes nothing', () => {
  const a = openCorral();
  makeVault(a);
  const dir = tempDir();
  const good = join(dir, 'good.corral');
  a.bundles.exportBundle('proj', good);
  const b = openCorral();
  const variant = (name: string, edit: (db: DatabaseSync) => void): string => {
    const f = join(dir, name);
    copyFileSync(good, f);
    const db = new DatabaseSync(f);
    edit(db);
    db.close();
    return f;
  };

  // One flipped byte in a blob's data.
  expectInvalid(
    b,
    variant('blob.corral', (db) => {
      const row = db.prepare("SELECT hash, data FROM blobs WHERE data = ?").get(enc('print("v1")\n')) as { hash: string; data: Uint8Array };
      const data = Uint8Array.from(row.data);
      data[0]! ^= 0xff;
      db.prepare('UPDATE blobs SET data = ? WHERE hash = ?').run(data, row.hash);
    }),
  );
  // A changed commit message (its id no longer matches).
  expectInvalid(b, variant('commit.corral', (db) => db.exec("UPDATE commits SET message = 'forged' WHERE parent IS NOT NULL")));
  // A checkpoint pointing at a commit that is not there.
  expectInvalid(b, variant('checkpoint.corral', (db) => db.exec(`UPDATE checkpoints SET commit_id = '${'a'.repeat(64)}'`)));
  // A missing blob.
  expectInvalid(b, variant('missing.corral', (db) => db.exec('DELETE FROM blobs WHERE rowid IN (SELECT rowid FROM blobs LIMIT 1)')));
  // A newer format version.
  expectInvalid(b, variant('version.corral', (db) => db.exec("UPDATE bundle_info SET value = '99' WHERE key = 'version'")));
  // A hostile tree whose hash and commit id are both consistent, but which names '..'.
  expectInvalid(
    b,
    variant('hostile.corral', (db) => {
      const blob = enc('pwned');
      db.prepare('INSERT INTO blobs(hash, size, data) VALUES (?, ?, ?)').run(sha256(blob), blob.length, blob);
      const text = JSON.stringify([['..', 'f', 0o644, sha256(blob), blob.length, 0]]);
      db.prepare('INSERT INTO trees(hash, entries) VALUES (?, ?)').run(sha256(text), text);
      const fields = [null, sha256(text), 'proj', 'evil', 'cli', 'x', 1];
      const id = sha256(JSON.stringify(fields));
      db.prepare('INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(id, null, sha256(text), 'proj', 'evil', 'cli', 'x', 1, blob.length, 1);
      db.prepare("UPDATE bundle_info SET value = ? WHERE key = 'head'").run(id);
    }),
  );
  // Lying totals in a consistently hashed tree (would defeat quotas).
  expectInvalid(
    b,
    variant('totals.corral', (db) => {
      const blob = enc('tiny');
      db.prepare('INSERT INTO blobs(hash, size, data) VALUES (?, ?, ?)').run(sha256(blob), blob.length, blob);
      const text = encodeTree([{ name: 'f', kind: 'file', mode: 0o644, hash: sha256(blob), size: 1, mtime: 0 }]);
      db.prepare('INSERT INTO trees(hash, entries) VALUES (?, ?)').run(sha256(text), text);
      const id = sha256(JSON.stringify([null, sha256(text), 'proj', 'small', 'cli', 'x', 1]));
      db.prepare('INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(id, null, sha256(text), 'proj', 'small', 'cli', 'x', 1, 1, 1);
      db.prepare("UPDATE bundle_info SET value = ? WHERE key = 'head'").run(id);
    }),
  );
  // A truncated file and a file that is not a bundle at all.
  const truncated = join(dir, 'truncated.corral');
  copyFileSync(good, truncated);
  truncateSync(truncated, Math.floor(statSync(good).size / 2));
  expectInvalid(b, truncated);
  const text = join(dir, 'text.corral');
  writeFileSync(text, 'hello, not a database\n'.repeat(100));
  expectInvalid(b, text);

  assert.equal(b.vaults.list().length, 0);
  assert.equal(b.store.db.get<{ n: number }>('SELECT count(*) AS n FROM commits')!.n, 0, 'no commit may stay behind');
  assert.equal(b.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n, 0, 'no blob may stay behind');
  assert.equal(b.store.audit.verify().ok, true);
  // The untouched bundle still imports.
  assert.equal(b.bundles.importBundle(good).head, a.store.getVault('proj').head);
  assert.ok(readFileSync(good).length > 0);
});

test('metadata values in a bundle obey the same limit as meta set: 64 KiB of UTF-8, not characters', () => {
  const a = openCorral();
  a.vaults.create('m');
  a.files.write('m', '/f.txt', enc('x'));
  const atLimit = 'é'.repeat(32 * 1024); // 65,536 bytes: the most `meta set` takes
  a.tags.metaSet('m', '/f.txt', 'ok', atLimit);
  const overLimit = 'é'.repeat(40_000); // 40,000 characters but 80,000 bytes
  assert.throws(() => a.tags.metaSet('m', '/f.txt', 'big', overLimit), (e: unknown) => isCorralError(e, 'PAYLOAD_TOO_LARGE'));
  const dir = tempDir();
  const good = join(dir, 'm.corral');
  a.bundles.exportBundle('m', good);

  const b = openCorral();
  const forged = join(dir, 'forged.corral');
  copyFileSync(good, forged);
  const db = new DatabaseSync(forged);
  db.prepare('INSERT INTO path_meta(path, key, value) VALUES (?, ?, ?)').run('/f.txt', 'big', overLimit);
  db.close();
  expectInvalid(b, forged);
  assert.throws(() => b.bundles.importBundle(forged), (e: unknown) => isCorralError(e, 'BUNDLE_INVALID') && /65536/.test(e.message));

  // The value at the limit round-trips.
  b.bundles.importBundle(good);
  assert.equal(b.tags.metaGet('m', '/f.txt', 'ok').value, atLimit);
});

test("a bundle cannot name another vault's commit of the importing home", () => {
  const a = openCorral();
  makeVault(a);
  const dir = tempDir();
  const forged = join(dir, 'forged.corral');
  a.bundles.exportBundle('proj', forged);
  const home = openCorral();
  home.vaults.create('secret');
  home.files.write('secret', '/key', enc('do not leak'));
  const secretHead = home.store.getVault('secret').head;
  const db = new DatabaseSync(forged);
  db.prepare("UPDATE bundle_info SET value = ? WHERE key = 'head'").run(secretHead);
  db.close();
  assert.throws(() => home.bundles.importBundle(forged, { name: 'stolen' }), (e: unknown) => isCorralError(e, 'BUNDLE_INVALID'));
  assert.equal(home.store.findVault('stolen'), undefined);
});

test("a bundle cannot borrow another vault's trees, blobs or fork point from the importing home", () => {
  const a = openCorral();
  makeVault(a);
  const dir = tempDir();
  const good = join(dir, 'good.corral');
  a.bundles.exportBundle('proj', good);
  const home = openCorral();
  home.vaults.create('secret');
  home.files.write('secret', '/key.txt', enc('TOPSECRET'));
  const secret = home.store.getCommit(home.store.getVault('secret').head);

  // A commit naming the secret vault's root tree, without carrying the tree or its blob.
  const borrowTree = join(dir, 'borrow-tree.corral');
  copyFileSync(good, borrowTree);
  let db = new DatabaseSync(borrowTree);
  const fields = [null, secret.tree, 'proj', 'evil', 'cli', 'x', 1];
  const id = sha256(JSON.stringify(fields));
  db.prepare('INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(id, null, secret.tree, 'proj', 'evil', 'cli', 'x', 1, secret.size, secret.files);
  db.prepare("UPDATE bundle_info SET value = ? WHERE key = 'head'").run(id);
  db.close();
  assert.throws(() => home.bundles.importBundle(borrowTree, { name: 'evil' }), (e: unknown) => isCorralError(e, 'BUNDLE_INVALID'));
  assert.equal(home.store.findVault('evil'), undefined);

  // A fork point naming the secret vault's head is dropped, and never exported from.
  const borrowFork = join(dir, 'borrow-fork.corral');
  copyFileSync(good, borrowFork);
  db = new DatabaseSync(borrowFork);
  db.prepare("INSERT OR REPLACE INTO vault_settings(key, value) VALUES ('forked_from', ?)").run(secret.id);
  db.close();
  home.bundles.importBundle(borrowFork, { name: 'evil2' });
  assert.equal(home.store.getVault('evil2').forkedFrom, null);
  const out = join(dir, 'evil2.corral');
  home.bundles.exportBundle('evil2', out);
  const check = new DatabaseSync(out);
  const leaked = check.prepare('SELECT count(*) AS n FROM blobs WHERE data = ?').get(enc('TOPSECRET')) as { n: number };
  check.close();
  assert.equal(leaked.n, 0);
});
