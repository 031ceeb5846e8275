// Single operations through the store API: write and read one file (1 KiB, 64 KiB, 1 MiB), list a
// 1,000-entry directory, full-text search over 1,000 documents. Baselines are the raw floors
// Corral is built on, measured in the same run: one SQLite row per transaction, readdir+lstat on
// tmpfs, a bare FTS5 query.
import { lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { distinctBuffers, freshDir, KiB, measure, MiB, openCorral, rng, atMost, type Bench, type BenchContext, benchCaller } from './lib.ts';

/** agentvfs's published per-operation figures at 1 KiB. */
const AGENTVFS = { write1k: 0.106, read1k: 0.0089 };

function sqliteFloor(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
  return db;
}

async function fileSizes(ctx: BenchContext): Promise<void> {
  const corral = openCorral(ctx.scratch, 'home');
  corral.vaults.create('store');
  const floor = sqliteFloor(join(ctx.scratch, 'floor.db'));
  const begin = floor.prepare('BEGIN IMMEDIATE');
  const insert = floor.prepare('INSERT INTO blobs(id, data) VALUES (?, ?)');
  const commit = floor.prepare('COMMIT');
  const select = floor.prepare('SELECT data FROM blobs WHERE id = ?');
  const sizes = [
    { label: '1 KiB', bytes: KiB, runs: ctx.quick ? 50 : 300, anchor: true },
    { label: '64 KiB', bytes: 64 * KiB, runs: ctx.quick ? 30 : 200, anchor: false },
    { label: '1 MiB', bytes: MiB, runs: ctx.quick ? 10 : 40, anchor: false },
  ];
  let nextId = 0;
  for (const s of sizes) {
    ctx.progress(`write/read ${s.label}`);
    const warmup = 5;
    const data = distinctBuffers(warmup + s.runs, s.bytes, s.bytes);
    // 16 directories keep each tree small, so the figure is one write, not a growing directory.
    const path = (i: number) => `/write-${s.bytes}/d${i % 16}/f${i}.bin`;
    const write = await measure(s.runs, (i) => corral.files.write('store', path(i), data[i]!), { warmup });
    const read = await measure(s.runs, (i) => corral.files.cat('store', path(i)), { warmup });
    const ids = data.map(() => nextId++);
    const floorWrite = await measure(s.runs, (i) => {
      begin.run();
      insert.run(ids[i]!, data[i]!);
      commit.run();
    }, { warmup });
    const floorRead = await measure(s.runs, (i) => select.get(ids[i]!), { warmup });
    ctx.add({
      name: `write ${s.label}`,
      corral: write,
      baseline: { label: 'SQLite insert+commit', value: floorWrite },
      ...(s.anchor ? { anchor: { label: 'agentvfs', value: AGENTVFS.write1k }, target: atMost(AGENTVFS.write1k, '≤ 106 µs (agentvfs)') } : {}),
      note: 'files.write: hash, tree edit, commit, audit record; one transaction',
    });
    ctx.add({
      name: `read ${s.label}`,
      corral: read,
      baseline: { label: 'SQLite select', value: floorRead },
      ...(s.anchor ? { anchor: { label: 'agentvfs', value: AGENTVFS.read1k }, target: atMost(AGENTVFS.read1k, '≤ 8.9 µs (agentvfs)') } : {}),
      note: 'files.cat of the head, tree cache warm',
    });
  }
  floor.close();
  corral.close();
}

async function listing(ctx: BenchContext): Promise<void> {
  ctx.progress('ls of 1,000 entries');
  const corral = openCorral(ctx.scratch, 'home-ls');
  corral.vaults.create('ls');
  const data = distinctBuffers(1000, 100);
  corral.store.mutate(benchCaller, 'ls', { op: 'bench.fill', target: '/big', message: 'fill' }, (editor) => {
    editor.mkdirs('/big');
    data.forEach((d, i) => {
      const blob = corral.store.objects.putBlob(d);
      editor.set(`/big/f${String(i).padStart(4, '0')}.txt`, { kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: editor.mtime });
    });
  });
  const host = freshDir(ctx.scratch, 'ls-host');
  data.forEach((d, i) => writeFileSync(join(host, `f${String(i).padStart(4, '0')}.txt`), d));
  const runs = ctx.quick ? 20 : 100;
  const ls = await measure(runs, () => {
    if (corral.files.ls('ls', '/big').length !== 1000) throw new Error('ls returned the wrong number of entries');
  }, { warmup: 3 });
  const floor = await measure(runs, () => {
    for (const name of readdirSync(host)) lstatSync(join(host, name));
  }, { warmup: 3 });
  ctx.add({ name: 'ls 1,000 entries', corral: ls, baseline: { label: 'readdir+lstat (tmpfs)', value: floor }, note: 'files.ls returns kind, mode, size, mtime, hash per entry; tree cache warm' });
  corral.close();
}

/** Words for documents: a fixed vocabulary, plus one rare word planted in 10 documents. */
function documents(n: number): string[] {
  const r = rng(7);
  const syllables = ['ka', 'lo', 'mi', 'ren', 'to', 'shi', 'vek', 'an', 'dor', 'pu', 'zel', 'ni', 'gra', 'fo', 'ul', 'be'];
  const vocab = Array.from({ length: 3000 }, () => Array.from({ length: 2 + Math.floor(r() * 3) }, () => syllables[Math.floor(r() * syllables.length)]).join(''));
  return Array.from({ length: n }, (_, i) => {
    // Skewed towards the first words, as in real text.
    const words = Array.from({ length: 80 + Math.floor(r() * 200) }, () => vocab[Math.floor(vocab.length * r() * r())]!);
    if (i % (n / 10) === 0) words.splice(Math.floor(r() * words.length), 0, 'quokka');
    return words.join(' ');
  });
}

async function search(ctx: BenchContext): Promise<void> {
  ctx.progress('search over 1,000 documents');
  const corral = openCorral(ctx.scratch, 'home-search');
  corral.vaults.create('docs');
  const docs = documents(1000);
  // Through files.write, so the documents reach the index the way an agent's writes do.
  docs.forEach((d, i) => corral.files.write('docs', `/docs/d${i % 10}/doc${i}.txt`, new TextEncoder().encode(d)));
  const floor = new DatabaseSync(join(ctx.scratch, 'fts-floor.db'));
  floor.exec("PRAGMA journal_mode = WAL; CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'unicode61')");
  const insert = floor.prepare('INSERT INTO t(body) VALUES (?)');
  floor.exec('BEGIN');
  for (const d of docs) insert.run(d);
  floor.exec('COMMIT');
  const query = floor.prepare('SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT 20');
  const runs = ctx.quick ? 20 : 100;
  const found = await measure(runs, () => {
    if (corral.search.search('docs', 'quokka', { limit: 20 }).results.length !== 10) throw new Error('search found the wrong number of documents');
  }, { warmup: 1 });
  const raw = await measure(runs, () => query.all('quokka'), { warmup: 3 });
  if (query.all('quokka').length !== 10) throw new Error('FTS5 floor found the wrong number of documents');
  ctx.add({ name: 'search 1,000 documents', corral: found, baseline: { label: 'bare FTS5 query', value: raw }, note: 'one rare word in 10 documents, limit 20; the vault index is built at the first (untimed) search; each search then finds it current (one read) and queries the head documents of the vault' });
  floor.close();
  corral.close();
}

export const storeBench: Bench = {
  name: 'store',
  title: 'Single operations through the store API',
  async run(ctx) {
    await fileSizes(ctx);
    await listing(ctx);
    await search(ctx);
  },
};
