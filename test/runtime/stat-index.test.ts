import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openCorral, tempDir } from '../helpers.ts';
import { buildIndex, emptyIndex, loadIndex, saveIndex, scanChanges, scanDir, RACY_MARGIN_MS, type StatIndex } from '../../src/runtime/stat-index.ts';
import { sha256 } from '../../src/store/object-store.ts';
import type { Corral } from '../../src/services/corral.ts';

const enc = new TextEncoder();

/** A vault with a few files, exported to a fresh directory, and the index built for it. */
function setup(): { c: Corral; dir: string; tree: string; index: StatIndex } {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a.txt', enc.encode('hello'));
  c.files.write('v', '/d/b.txt', enc.encode('bbb'));
  const dir = join(tempDir('corral-idx-'), 'co');
  c.transfer.exportDir('v', '/', dir);
  const tree = c.store.headTree('v');
  return { c, dir, tree, index: buildIndex(dir, tree, c.store.objects) };
}

test('buildIndex trusts files Corral wrote (size and mtime of the tree) and hashes the others', () => {
  const { c, dir, tree } = setup();
  writeFileSync(join(dir, 'd/b.txt'), 'BBB');
  const index = buildIndex(dir, tree, c.store.objects);
  assert.equal(index.entries.get('/a.txt')!.hash, sha256(enc.encode('hello')));
  // Changed after the export: its real content is what the index records, so the scan sees it.
  assert.equal(index.entries.get('/d/b.txt')!.hash, sha256(enc.encode('BBB')));
  assert.deepEqual(scanChanges(dir, index, c.store.objects, tree).changes.map((ch) => ch.path), ['/d/b.txt']);
});

test('racily clean: a same-size write within the stat tick is still found; an old entry is trusted', () => {
  const { c, dir, tree } = setup();
  const file = join(dir, 'a.txt');
  writeFileSync(file, 'HELLO');
  // An index entry that records the file's current stat with the OLD content's hash: what a write
  // landing within the same timestamp tick as the recording looks like.
  const st = lstatSync(file, { bigint: true });
  const forged = (recordedAt: number): StatIndex => {
    const index = emptyIndex(tree);
    index.entries.set('/a.txt', { size: 5, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: Number(st.ino), dev: Number(st.dev), mode: Number(st.mode), hash: sha256(enc.encode('hello')), recordedAt });
    return index;
  };
  const scanA = (index: StatIndex): string[] => scanChanges(dir, index, c.store.objects, tree).changes.filter((ch) => ch.path === '/a.txt').map((ch) => ch.op);
  // Recorded just now: the timestamps are not older than the record minus the margin, so the file is hashed.
  assert.deepEqual(scanA(forged(Date.now())), ['file']);
  // Recorded long after the file's timestamps: the stat is trusted (this is what makes scans cheap).
  assert.deepEqual(scanA(forged(Date.now() + 10 * RACY_MARGIN_MS)), []);
});

test('a write that keeps size and mtime (touch -d back) still shows in the ctime', () => {
  const { c, dir, tree, index } = setup();
  // Entries taken as old enough to trust, so only the stat comparison can catch the write.
  for (const e of index.entries.values()) e.recordedAt += 10 * RACY_MARGIN_MS;
  const file = join(dir, 'a.txt');
  const before = lstatSync(file);
  writeFileSync(file, 'HELLO');
  utimesSync(file, before.atime, before.mtime);
  assert.deepEqual(scanChanges(dir, index, c.store.objects, tree).changes.map((ch) => ch.path), ['/a.txt']);
});

test('the index round-trips through its file; a missing or corrupt one means comparing everything by content', () => {
  const { c, dir, tree, index } = setup();
  const file = join(tempDir(), 'idx.json');
  saveIndex(file, index);
  const back = loadIndex(file);
  assert.deepEqual([...back.entries], [...index.entries]);
  assert.equal(back.tree, tree);
  writeFileSync(file, '{"version":1,"tree":"x","entries":[["/a.txt",1]]}');
  assert.equal(loadIndex(file).entries.size, 0);
  writeFileSync(file, 'not json');
  assert.equal(loadIndex(file).entries.size, 0);
  assert.equal(loadIndex(join(tempDir(), 'missing.json')).entries.size, 0);
  // Without an index: exact all the same.
  writeFileSync(join(dir, 'a.txt'), 'HELLO');
  const r = scanDir(dir, emptyIndex(), c.store.objects, tree);
  assert.deepEqual(r.changes.map((ch) => ch.path), ['/a.txt']);
  assert.equal(r.observed.get('/d/b.txt')!.hash, sha256(enc.encode('bbb')), 'unchanged files are learnt for the next index');
  assert.equal(readFileSync(join(dir, 'd/b.txt'), 'utf8'), 'bbb');
});

test('cost: scanChanges over 10k files, warm index and no index (printed, not asserted)', (t) => {
  const c = openCorral();
  c.vaults.create('big');
  const src = tempDir('corral-idx-src-');
  for (let d = 0; d < 100; d++) {
    mkdirSync(join(src, `d${d}`));
    for (let f = 0; f < 100; f++) writeFileSync(join(src, `d${d}`, `f${f}`), `content of ${d}/${f}\n`);
  }
  c.transfer.importDir('big', src, '/');
  const dir = join(tempDir('corral-idx-big-'), 'co');
  c.transfer.exportDir('big', '/', dir);
  const tree = c.store.headTree('big');
  const index = buildIndex(dir, tree, c.store.objects);
  // Entries recorded well after the files were written, as they are once the checkout is in use.
  for (const e of index.entries.values()) e.recordedAt += 10 * RACY_MARGIN_MS;
  writeFileSync(join(dir, 'd5/f5'), 'changed\n');
  const time = (fn: () => unknown): number => {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  };
  const warm: number[] = [];
  let changes = 0;
  for (let i = 0; i < 5; i++) warm.push(time(() => (changes = scanChanges(dir, index, c.store.objects, tree).changes.length)));
  const cold = time(() => scanChanges(dir, emptyIndex(), c.store.objects, tree));
  assert.equal(changes, 1);
  warm.sort((a, b) => a - b);
  t.diagnostic(`scanChanges, 10k files, 1 changed: with index median ${warm[2]!.toFixed(1)} ms; without index (hash all) ${cold.toFixed(1)} ms`);
});
