// stats, gc and compact: counts against what was written, mark and sweep over the whole home
// (deleted vaults, forks of deleted vaults, checkpoints, the grace period, the search index), and
// the CLI commands.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { Corral } from '../../src/services/corral.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { walkTree } from '../../src/store/tree-diff.ts';
import { assertHomeComplete } from '../durability/check.ts';
import { corral, openCorral, tempDir, testCaller } from '../helpers.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A Corral whose clock the test moves. */
function clockedCorral(start = 1_800_000_000_000): { c: Corral; clock: { now: number } } {
  const clock = { now: start };
  const c = new Corral({ home: tempDir(), caller: testCaller, now: () => clock.now });
  after(() => c.close());
  return { c, clock };
}

function rows(c: Corral): { blobs: number; trees: number; commits: number } {
  const n = (t: string): number => c.store.db.get<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)!.n;
  return { blobs: n('blobs'), trees: n('trees'), commits: n('commits') };
}

/** Every file of a vault's head with its content, read through the public API (use a freshly opened Corral: no tree cached). */
function snapshot(c: Corral, vault: string): Record<string, string> {
  const out: Record<string, string> = {};
  const head = c.store.getCommit(c.store.getVault(vault).head);
  walkTree(c.store.objects, head.tree, '/', (path, e) => {
    if (e.kind === 'file') out[path] = new TextDecoder().decode(c.files.cat(vault, path));
    if (e.kind === 'symlink') out[path] = '-> ' + new TextDecoder().decode(c.store.objects.getBlob(e.hash));
  });
  return out;
}

describe('stats', () => {
  test('counts files, dirs, symlinks, commits, checkpoints and dedup of a vault head', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/a.txt', text('same content'));
    c.files.write('v', '/dir/b.txt', text('same content'));
    c.files.write('v', '/dir/sub/c.txt', text('other'));
    c.files.mkdir('v', '/empty');
    c.files.symlink('v', 'a.txt', '/link');
    c.checkpoints.save('v', 'one');
    c.files.write('v', '/a.txt', text('changed'));
    const s = c.maintenance.stats('v');
    assert.equal(s.vault, 'v');
    assert.equal(s.head, c.store.getVault('v').head);
    assert.equal(s.files, 3);
    assert.equal(s.symlinks, 1);
    assert.equal(s.dirs, 3); // /dir, /dir/sub, /empty
    assert.equal(s.commits, 7); // create + 5 changes + 1 after the checkpoint
    assert.equal(s.checkpoints, 1);
    // Contents: 'changed' (7), 'same content' (12), 'other' (5), link target 'a.txt' (5).
    assert.equal(s.blobs, 4);
    assert.equal(s.logicalBytes, 7 + 12 + 5 + 5);
    assert.equal(s.storedBytes, 7 + 12 + 5 + 5);
    c.files.write('v', '/a.txt', text('same content'));
    const d = c.maintenance.stats('v');
    assert.equal(d.blobs, 3);
    assert.equal(d.logicalBytes, 12 + 12 + 5 + 5);
    assert.equal(d.storedBytes, 12 + 5 + 5);
    assert.equal(d.dedupRatio, Math.round((34 / 22) * 100) / 100);
  });

  test('an identical subtree stored twice counts its paths twice and its blobs once', () => {
    const c = openCorral();
    c.vaults.create('v');
    for (let i = 0; i < 5; i++) c.files.write('v', `/x/f${i}`, text(`file ${i}`));
    c.files.cp('v', '/x', '/y', { recursive: true });
    const s = c.maintenance.stats('v');
    assert.equal(s.files, 10);
    assert.equal(s.dirs, 2);
    assert.equal(s.blobs, 5);
    assert.equal(s.dedupRatio, 2);
  });

  test('a fork counts the history it shares with its parent; the home dedups across vaults', () => {
    const c = openCorral();
    c.vaults.create('base');
    c.files.write('base', '/big.bin', new Uint8Array(10_000).fill(7));
    c.vaults.fork('base', 'child');
    c.files.write('child', '/own.txt', text('mine'));
    const child = c.maintenance.stats('child');
    assert.equal(child.commits, 3);
    assert.equal(child.files, 2);
    const home = c.maintenance.homeStats();
    assert.equal(home.vaults, 2);
    assert.equal(home.heads.files, 3);
    assert.equal(home.heads.logicalBytes, 20_004);
    assert.equal(home.heads.storedBytes, 10_004);
    assert.equal(home.heads.blobs, 2);
    assert.equal(home.rows.commits, 3);
    assert.equal(home.rows.blobs, 2);
    assert.equal(home.blobBytes, 10_004);
    assert.ok(home.database.bytes >= home.database.mainBytes && home.database.mainBytes > 0);
    assert.equal(home.database.bytes, home.database.mainBytes + home.database.walBytes);
    assert.ok(home.database.pageCount > 0 && home.database.pageSize >= 512);
    assert.deepEqual(c.maintenance.allVaultStats().map((v) => v.vault), ['base', 'child']);
  });

  test('vault info and stats count commits alike: reachable from the head and the checkpoints', () => {
    const c = openCorral();
    c.vaults.create('v');
    const first = c.files.write('v', '/a.txt', text('a')).commit!;
    c.files.write('v', '/b.txt', text('b'));
    c.checkpoints.save('v', 'kept');
    const v = c.store.getVault('v');
    // The head moves back past the checkpoint: the checkpoint alone keeps the last commit.
    c.store.write(testCaller, 'v', { op: 'test.reset' }, () => c.store.swapHead(v.id, v.head, first.id));
    assert.equal(c.maintenance.stats('v').commits, 3);
    assert.equal(c.vaults.info('v').commits, 3);
    c.checkpoints.delete('v', 'kept');
    assert.equal(c.maintenance.stats('v').commits, 2);
    assert.equal(c.vaults.info('v').commits, 2);
  });

  test('an unknown or hostile vault name is a clear error', () => {
    const c = openCorral();
    assert.throws(() => c.maintenance.stats('nope'), (e) => isCorralError(e, 'VAULT_NOT_FOUND'));
    assert.throws(() => c.maintenance.stats('../x'), (e) => isCorralError(e, 'INVALID_NAME'));
  });
});

describe('gc', () => {
  test('frees what only a deleted vault reached; its fork keeps everything it needs', () => {
    const { c, clock } = clockedCorral();
    const tick = (): void => void (clock.now += 1000);
    c.vaults.create('parent');
    c.files.write('parent', '/shared.txt', text('shared by both'));
    tick();
    c.files.write('parent', '/docs/readme.md', text('# readme'));
    c.files.symlink('parent', 'docs/readme.md', '/readme');
    c.checkpoints.save('parent', 'before-fork');
    c.vaults.fork('parent', 'fork');
    tick();
    const parentOnly = new Uint8Array(50_000).fill(1);
    c.files.write('parent', '/parent-only.bin', parentOnly);
    c.files.write('parent', '/docs/readme.md', text('# parent edit'));
    c.checkpoints.save('parent', 'after');
    c.files.write('fork', '/fork.txt', text('fork file'));
    const forkBefore = snapshot(c, 'fork');
    const forkLog = c.history.log('fork', { limit: 100 }).map((x) => x.id);

    // Nothing is garbage while both vaults exist.
    clock.now += 7200_000;
    const idle = c.maintenance.gc();
    assert.deepEqual({ ...idle.removed }, { commits: 0, trees: 0, blobs: 0, blobBytes: 0, treeBytes: 0, bytes: 0 });

    c.vaults.delete('parent', true);
    clock.now += 7200_000;
    const before = rows(c);
    const dry = c.maintenance.gc({ dryRun: true });
    assert.deepEqual(rows(c), before, 'a dry run deletes nothing');
    const r = c.maintenance.gc();
    assert.equal(r.dryRun, false);
    assert.deepEqual(r.removed, dry.removed, 'the dry run predicted the real run');
    // Gone: the 2 commits made on the parent after the fork, their new trees, the two new contents.
    assert.equal(r.removed.commits, 2);
    assert.equal(r.removed.blobs, 2);
    assert.equal(r.removed.blobBytes, 50_000 + '# parent edit'.length);
    assert.ok(r.removed.trees >= 2);
    assert.ok(r.removed.bytes > r.removed.blobBytes);
    const afterRows = rows(c);
    assert.equal(afterRows.commits, before.commits - 2);
    assert.equal(afterRows.blobs, before.blobs - 2);
    assert.equal(afterRows.trees, before.trees - r.removed.trees);

    // The fork is whole: files, symlink, every commit back to the parent's creation. Checked
    // through a fresh Corral: this one's tree cache could hide a row gc deleted.
    const fresh = openCorral(c.store.home);
    assert.deepEqual(snapshot(fresh, 'fork'), forkBefore);
    assert.deepEqual(fresh.history.log('fork', { limit: 100 }).map((x) => x.id), forkLog);
    assert.equal(forkLog.length, 5); // create, shared.txt, readme.md, the link (parent), fork.txt
    assert.ok(assertHomeComplete(fresh).trees > 0);
    assert.equal(fresh.store.audit.verify().ok, true);

    // A second run finds nothing more.
    assert.equal(c.maintenance.gc({ graceSeconds: 0 }).removed.bytes, 0);
  });

  test('a deleted vault with no fork leaves nothing behind', () => {
    const c = openCorral();
    c.vaults.create('keep');
    c.files.write('keep', '/k.txt', text('keep'));
    c.vaults.create('gone');
    for (let i = 0; i < 10; i++) c.files.write('gone', `/d${i % 3}/f${i}.txt`, text(`gone ${i}`));
    c.checkpoints.save('gone', 'cp');
    c.vaults.delete('gone', true);
    const r = c.maintenance.gc({ graceSeconds: 0 });
    assert.equal(r.removed.commits, 11);
    assert.equal(r.removed.blobs, 10);
    const left = rows(c);
    assert.equal(left.commits, 2);
    assert.equal(left.blobs, 1);
    assert.equal(c.store.db.get<{ n: number }>("SELECT count(*) AS n FROM commits WHERE vault = 'gone'")!.n, 0);
    assert.equal(new TextDecoder().decode(c.files.cat('keep', '/k.txt')), 'keep');
  });

  test('a checkpoint keeps a commit the head no longer reaches', () => {
    const c = openCorral();
    c.vaults.create('v');
    const first = c.files.write('v', '/a.txt', text('first')).commit!;
    c.files.write('v', '/b.txt', text('only in the checkpoint'));
    c.checkpoints.save('v', 'keep-b');
    const v = c.store.getVault('v');
    // Move the head back past the checkpoint (as a history rewrite would).
    c.store.write(testCaller, 'v', { op: 'test.reset' }, () => c.store.swapHead(v.id, v.head, first.id));
    assert.equal(c.maintenance.gc({ graceSeconds: 0 }).removed.commits, 0);
    assert.equal(new TextDecoder().decode(c.files.cat('v', '/b.txt', 'keep-b')), 'only in the checkpoint');
    c.checkpoints.delete('v', 'keep-b');
    const r = c.maintenance.gc({ graceSeconds: 0 });
    assert.equal(r.removed.commits, 1);
    assert.equal(r.removed.blobs, 1);
    assert.equal(r.removed.blobBytes, 'only in the checkpoint'.length);
  });

  test('the grace period keeps young objects and everything a young object refers to', () => {
    const { c, clock } = clockedCorral();
    c.vaults.create('v');
    c.files.write('v', '/old.txt', text('old content'));
    const oldHead = c.store.getCommit(c.store.getVault('v').head);
    c.vaults.delete('v', true);
    clock.now += 1000_000; // 1000 s later: inside the default grace period of 3600 s
    const young = c.maintenance.gc();
    assert.equal(young.graceSeconds, 3600);
    assert.equal(young.removed.commits + young.removed.trees + young.removed.blobs, 0);
    assert.equal(young.keptByGrace.commits, 2);
    assert.equal(young.keptByGrace.blobs, 1);

    // A commit another process is assembling now refers to the old (unreachable) tree.
    clock.now += 3000_000;
    c.store.write(testCaller, null, { op: 'test.orphan' }, () => c.store.insertCommit({ parent: null, tree: oldHead.tree, vault: 'elsewhere', message: 'in progress', origin: 'cli', actor: 't', size: oldHead.size, files: oldHead.files }));
    const r = c.maintenance.gc();
    // The two old commits go; the old tree and blob stay because the young commit reaches them.
    assert.equal(r.removed.commits, 2);
    assert.equal(r.removed.blobs, 0);
    assert.equal(r.removed.trees, 0);
    assert.equal(r.keptByGrace.commits, 1);
    assert.ok(c.store.objects.hasBlob(c.store.db.get<{ hash: string }>('SELECT hash FROM blobs')!.hash));
    clock.now += 3601_000;
    const late = c.maintenance.gc();
    assert.equal(late.removed.commits, 1);
    assert.equal(late.removed.blobs, 1);
    assert.deepEqual(rows(c), { blobs: 0, trees: 0, commits: 0 });
  });

  test('gc is one audited transaction; the search index holds only live heads, so gc leaves it alone', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/keep.txt', text('kept words'));
    c.vaults.create('tmp');
    c.files.write('tmp', '/drop.txt', text('dropped words'));
    assert.equal(c.search.search('v', 'words').results.length, 1);
    assert.equal(c.search.search('tmp', 'words').results.length, 1);
    c.vaults.delete('tmp', true);
    const r = c.maintenance.gc({ graceSeconds: 0 });
    assert.equal(r.removed.blobs, 1);
    assert.deepEqual(c.store.db.all<{ path: string }>("SELECT path FROM fts WHERE fts MATCH 'words'").map((x) => x.path), ['/keep.txt']);
    assert.deepEqual(c.search.search('v', 'words').results.map((x) => x.path), ['/keep.txt']);
    const records = c.store.audit.list({ op: 'gc' });
    assert.equal(records.length, 1);
    assert.equal(records[0]!.result, 'ok');
    assert.deepEqual((records[0]!.details as { removed: unknown }).removed, r.removed);
    assert.equal(c.maintenance.gc({ graceSeconds: 0, dryRun: true }).dryRun, true);
    assert.equal(c.store.audit.list({ op: 'gc' }).length, 1, 'a dry run changes nothing and is not audited');
    assert.equal(c.store.audit.verify().ok, true);
  });

  test('a reachable tree that is missing stops gc before it deletes anything', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/dir/a.txt', text('a'));
    c.vaults.create('junk');
    c.files.write('junk', '/j.txt', text('junk'));
    c.vaults.delete('junk', true);
    const dir = c.files.stat('v', '/dir').hash;
    c.store.db.run('DELETE FROM trees WHERE hash = ?', dir);
    // A fresh connection, with no tree cached (as another process would be).
    const fresh = openCorral(c.store.home);
    const before = rows(fresh);
    assert.throws(() => fresh.maintenance.gc({ graceSeconds: 0 }), (e) => isCorralError(e, 'STORAGE_CORRUPT') && e.message.includes(dir));
    assert.deepEqual(rows(fresh), before);
    assert.equal(fresh.store.audit.list({ op: 'gc' })[0]?.result, 'error:STORAGE_CORRUPT');
  });

  test('the completeness check sees a missing tree row even when the tree is cached', () => {
    const c = openCorral();
    c.vaults.create('v');
    // More than 32 entries: the directory is an index row and shard rows.
    for (let i = 0; i < 40; i++) c.files.write('v', `/many/f${i}.txt`, text(`file ${i}`));
    assert.equal(c.files.ls('v', '/many').length, 40); // every row of /many is now cached
    const many = c.files.stat('v', '/many').hash;
    const shard = c.store.objects.treeRows(many).find((h) => h !== many)!;
    assert.ok(shard, '/many is sharded');
    assertHomeComplete(c);
    c.store.db.run('DELETE FROM trees WHERE hash = ?', shard);
    assert.equal(c.files.ls('v', '/many').length, 40, 'the cache still serves the deleted row');
    assert.throws(() => assertHomeComplete(c), new RegExp(`tree ${shard} .*is missing`));
  });

  test('rejects a bad grace period', () => {
    const c = openCorral();
    for (const g of [-1, 1.5, Number.NaN, 2 ** 60]) assert.throws(() => c.maintenance.gc({ graceSeconds: g }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  });

  test('marks a 100,000-file vault with many commits quickly', (t) => {
    const c = openCorral();
    c.vaults.create('big');
    c.store.mutate(testCaller, 'big', { op: 'test.bulk', message: 'bulk' }, (editor) => {
      for (let d = 0; d < 100; d++) {
        editor.mkdirs(`/d${d}`);
        for (let f = 0; f < 1000; f++) {
          const b = c.store.objects.putBlob(text(`file ${d}/${f}`));
          editor.set(`/d${d}/f${f}.txt`, { kind: 'file', mode: 0o644, hash: b.hash, size: b.size, mtime: 1 });
        }
      }
    });
    for (let i = 0; i < 60; i++) c.files.write('big', `/d${i}/f${i}.txt`, text(`version ${i}`));
    c.vaults.create('junk');
    c.files.write('junk', '/x', text('x'));
    c.vaults.delete('junk', true);
    const started = performance.now();
    const r = c.maintenance.gc({ graceSeconds: 0 });
    const ms = performance.now() - started;
    assert.equal(r.reachable.commits, 62);
    assert.equal(r.reachable.blobs, 100_060);
    assert.equal(r.removed.commits, 2);
    assert.equal(r.removed.blobs, 1);
    assert.ok(ms < 8000, `gc took ${ms} ms`);
    t.diagnostic(`gc over ${r.reachable.blobs} blobs and ${r.reachable.trees} tree rows took ${Math.round(ms)} ms`);
  });
});

describe('compact', () => {
  test('gives the space of swept objects back to the filesystem, keeping the data', () => {
    const c = openCorral();
    c.vaults.create('keep');
    c.files.write('keep', '/k.txt', text('keep me'));
    c.vaults.create('big');
    for (let i = 0; i < 8; i++) c.files.write('big', `/b${i}.bin`, new Uint8Array(256 * 1024).fill(i));
    c.vaults.delete('big', true);
    c.maintenance.gc({ graceSeconds: 0 });
    const r = c.maintenance.compact();
    assert.ok(r.before.bytes > 2 * 1024 * 1024, `before: ${r.before.bytes}`);
    assert.ok(r.after.bytes < 512 * 1024, `after: ${r.after.bytes}`);
    assert.equal(r.bytesFreed, r.before.bytes - r.after.bytes);
    assert.equal(r.after.freelistCount, 0);
    assert.equal(r.after.walBytes, 0);
    assert.equal(new TextDecoder().decode(c.files.cat('keep', '/k.txt')), 'keep me');
    assert.equal(c.store.db.get<{ integrity_check: string }>('PRAGMA integrity_check')!.integrity_check, 'ok');
    const records = c.store.audit.list({ op: 'compact' });
    assert.equal(records.length, 1);
    assert.equal(records[0]!.result, 'ok');
    const details = records[0]!.details as { bytesBefore: number; bytesAfter: number };
    assert.equal(details.bytesBefore, r.before.bytes);
    assert.ok(details.bytesAfter < 512 * 1024, 'the record is written after VACUUM, with the size it left');
    assert.equal(c.store.audit.verify().ok, true);
    // The store keeps working after VACUUM.
    c.files.write('keep', '/after.txt', text('after'));
    assert.equal(c.maintenance.stats('keep').files, 2);
  });
  test('a compact that fails is audited as an error, never as ok', () => {
    const c = openCorral();
    c.vaults.create('v');
    for (let i = 0; i < 3; i++) c.files.write('v', `/f${i}.txt`, text(`file ${i}`));
    // A statement still stepping on the connection makes SQLite refuse the WAL checkpoint and VACUUM.
    const reading = c.store.db.raw.prepare('SELECT hash FROM blobs').iterate();
    reading.next();
    let code = '';
    try {
      assert.throws(() => c.maintenance.compact(), (e) => {
        assert.ok(isCorralError(e));
        code = e.code;
        return true;
      });
    } finally {
      reading.return?.();
    }
    const records = c.store.audit.list({ op: 'compact' });
    assert.deepEqual(records.map((x) => x.result), [`error:${code}`]);
    assert.equal(typeof (records[0]!.details as { bytesBefore: unknown }).bytesBefore, 'number');
    assert.equal(c.store.audit.verify().ok, true);
    // With nothing in progress it runs, and is recorded once more, as ok.
    c.maintenance.compact();
    assert.deepEqual(c.store.audit.list({ op: 'compact' }).map((x) => x.result).sort(), [`error:${code}`, 'ok'].sort());
  });
});

describe('CLI', () => {
  test('stats, gc and compact with --json and as text', () => {
    const home = tempDir();
    assert.equal(corral(home, ['vault', 'create', 'v', '--use']).code, 0);
    assert.equal(corral(home, ['write', '/a.txt', 'hello']).code, 0);
    assert.equal(corral(home, ['write', '/b.txt', 'hello']).code, 0);
    const s = corral(home, ['stats', '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json.vault, 'v');
    assert.equal(s.json.files, 2);
    assert.equal(s.json.blobs, 1);
    assert.equal(s.json.dedupRatio, 2);
    const human = corral(home, ['stats']);
    assert.match(human.stdout, /2 files, 0 directories, 0 symlinks/);
    assert.match(human.stdout, /dedup 2\.00x/);
    const all = corral(home, ['stats', '--all', '--json']);
    assert.equal(all.json.home.vaults, 1);
    assert.equal(all.json.vaults[0].vault, 'v');
    assert.ok(all.json.home.database.bytes > 0);
    assert.match(corral(home, ['stats', '--all']).stdout, /database .*pages of/);

    assert.equal(corral(home, ['vault', 'create', 'tmp']).code, 0);
    assert.equal(corral(home, ['--vault', 'tmp', 'write', '/t.txt', 'temporary']).code, 0);
    assert.equal(corral(home, ['vault', 'delete', 'tmp', '--yes']).code, 0);
    const kept = corral(home, ['gc', '--json']);
    assert.equal(kept.code, 0);
    assert.equal(kept.json.removed.commits, 0, 'the default grace period keeps what was just written');
    assert.ok(kept.json.keptByGrace.commits >= 2);
    const dry = corral(home, ['gc', '--dry-run', '--grace', '0']);
    assert.match(dry.stdout, /would remove 2 commits, \d+ trees?, 1 blob:/);
    const real = corral(home, ['gc', '--grace', '0s', '--json']);
    assert.equal(real.json.removed.commits, 2);
    assert.equal(real.json.removed.blobBytes, 'temporary'.length);
    const compact = corral(home, ['compact', '--json']);
    assert.equal(compact.code, 0);
    assert.equal(typeof compact.json.before.bytes, 'number');
    assert.match(corral(home, ['compact']).stdout, /database .* -> /);
    assert.equal(corral(home, ['cat', '/a.txt']).stdout, 'hello');
    assert.equal(corral(home, ['audit', 'verify', '--json']).json.ok, true);
  });

  test('bad input is a clear error', () => {
    const home = tempDir();
    const g = corral(home, ['gc', '--grace', '-5', '--json']);
    assert.equal(g.code, 2);
    assert.equal(g.json.error.code, 'INVALID_ARGUMENT');
    assert.equal(corral(home, ['gc', '--grace', '1y', '--json']).json.error.code, 'INVALID_ARGUMENT');
    const s = corral(home, ['stats', '--json']);
    assert.equal(s.json.error.code, 'NO_VAULT_SELECTED');
    assert.equal(corral(home, ['--vault', '../../etc', 'stats', '--json']).json.error.code, 'INVALID_NAME');
    assert.match(corral(home, ['gc', '--help']).stdout, /Examples:/);
  });
});
