// The output store with its writes on a worker thread: readers following the exec get every byte
// at its offset while rows are still being written, the exec's end waits for its last rows, the
// bound still applies, and 'auto' moves to the worker only when output comes in volume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecOutputStore, type OutputStream } from '../../src/services/exec-output-store.ts';
import { openCorral } from '../helpers.ts';

/** Everything readable from `from` on, page by page: where it started (after a gap) and the bytes. */
function readFrom(store: ExecOutputStore, id: string, stream: OutputStream, from: number, page = 100_000): { start: number; bytes: Buffer } {
  let at = from;
  let start = from;
  const parts: Buffer[] = [];
  for (;;) {
    const r = store.read(id, stream, at, page);
    if (r.start > at) {
      assert.equal(parts.length, 0, 'a gap only before the first byte read');
      start = at = r.start;
    }
    for (const c of r.chunks) {
      assert.equal(c.offset, at);
      parts.push(c.data);
      at += c.data.length;
    }
    if (r.chunks.length === 0 || at >= r.end) return { start, bytes: Buffer.concat(parts) };
  }
}

const usesWorker = (store: ExecOutputStore) => (store as unknown as { writer: unknown }).writer !== null;

test('worker writer: exact bytes from any offset while written and after the end; the bound applies; the rows are on disk at the end', () => {
  const corral = openCorral();
  try {
    const maxBytes = 1 << 20;
    const store = new ExecOutputStore(corral.store.db, { writer: 'worker', maxBytes });
    const id = 'exec_00000000000000000000000001';
    const all: Record<OutputStream, Buffer[]> = { stdout: [], stderr: [] };
    const whole = (s: OutputStream) => Buffer.concat(all[s]);
    for (let i = 0; i < 240; i++) {
      const stream: OutputStream = i % 5 === 4 ? 'stderr' : 'stdout';
      const data = Buffer.alloc(i % 3 === 0 ? 100_000 : 3000 + i, `${stream}-${i};`);
      store.append(id, stream, data);
      all[stream].push(data);
      if (i % 40 === 39) {
        for (const s of ['stdout', 'stderr'] as const) {
          const expected = whole(s);
          for (const from of [0, expected.length - maxBytes + 7, expected.length - 1, expected.length]) {
            const got = readFrom(store, id, s, Math.max(0, from));
            assert.deepEqual(got.bytes, expected.subarray(got.start), `${s} from ${from} at ${i}`);
            assert.ok(got.start <= Math.max(0, from, expected.length - maxBytes), `${s}: nothing kept is skipped`);
          }
        }
      }
    }
    assert.ok(usesWorker(store), 'the writes went to the worker');
    store.finish(id);
    // Another store on the same database has nothing in memory: the bytes come from the rows.
    const fresh = new ExecOutputStore(corral.store.db, { writer: 'inline' });
    for (const s of ['stdout', 'stderr'] as const) {
      const expected = whole(s);
      assert.deepEqual(fresh.ends(id)[s], expected.length);
      const got = readFrom(fresh, id, s, 0);
      if (expected.length > maxBytes) assert.ok(got.start > 0 && got.start <= expected.length - maxBytes, `${s}: the bound dropped the oldest rows (start ${got.start})`);
      else assert.equal(got.start, 0);
      assert.deepEqual(got.bytes, expected.subarray(got.start));
    }
    const kept = corral.store.db.get<{ n: number }>('SELECT sum(size) AS n FROM exec_output WHERE exec_id = ? AND stream = 1', id)!.n;
    assert.ok(kept >= maxBytes && kept < maxBytes + 101_000, `stdout keeps about maxBytes (${kept})`);
  } finally {
    corral.close();
  }
});

test("worker writer: 'auto' writes small output inline and moves to the worker for a flood; drop waits for the worker", () => {
  const corral = openCorral();
  try {
    const store = new ExecOutputStore(corral.store.db);
    const quiet = 'exec_00000000000000000000000002';
    store.append(quiet, 'stdout', Buffer.from('hello\n'));
    store.finish(quiet);
    assert.equal(usesWorker(store), false);
    assert.equal(readFrom(store, quiet, 'stdout', 0).bytes.toString(), 'hello\n');

    const flood = 'exec_00000000000000000000000003';
    const chunk = Buffer.alloc(64 * 1024, 'f');
    for (let i = 0; i < 160; i++) store.append(flood, 'stdout', chunk);
    assert.ok(usesWorker(store), '10 MiB at once moved the writes to the worker');
    assert.equal(store.ends(flood).stdout, 160 * chunk.length);
    store.drop(flood);
    assert.equal(corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM exec_output WHERE exec_id = ?', flood)!.n, 0, 'no row written after the drop');
    assert.equal(readFrom(store, quiet, 'stdout', 0).bytes.toString(), 'hello\n');
  } finally {
    corral.close();
  }
});

test('worker writer: while its rows wait for a lock held elsewhere, readers get every byte from memory; the end waits for them', () => {
  const corral = openCorral();
  try {
    const store = new ExecOutputStore(corral.store.db, { writer: 'worker' });
    const id = 'exec_00000000000000000000000004';
    const parts: Buffer[] = [];
    const db = corral.store.db.raw;
    db.exec('BEGIN IMMEDIATE');
    try {
      for (let i = 0; i < 48; i++) {
        const data = Buffer.alloc(64 * 1024, `part-${i};`);
        store.append(id, 'stdout', data);
        parts.push(data);
      }
      const expected = Buffer.concat(parts);
      for (const from of [0, 12_345, expected.length - 1]) assert.deepEqual(readFrom(store, id, 'stdout', from).bytes, expected.subarray(from));
      assert.equal(corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM exec_output WHERE exec_id = ?', id)!.n, 0, 'nothing written yet');
    } finally {
      db.exec('COMMIT');
    }
    store.finish(id);
    assert.equal(corral.store.db.get<{ n: number }>('SELECT sum(size) AS n FROM exec_output WHERE exec_id = ?', id)!.n, 48 * 64 * 1024);
    assert.deepEqual(readFrom(store, id, 'stdout', 0).bytes, Buffer.concat(parts));
  } finally {
    corral.close();
  }
});

test('worker writer: a batch it fails surfaces once, from the next flush, as an inline write would; then writes are inline', async () => {
  const corral = openCorral();
  try {
    const store = new ExecOutputStore(corral.store.db, { writer: 'worker' });
    const id = 'exec_00000000000000000000000005';
    corral.store.db.raw.exec(`CREATE TRIGGER refuse BEFORE INSERT ON exec_output WHEN NEW.exec_id = '${id}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    const chunk = (fill: string) => Buffer.alloc(256 * 1024, fill);
    store.append(id, 'stdout', chunk('a'));
    for (let i = 0; i < 200 && (store as unknown as { writer: { failure(): unknown } | null }).writer?.failure() == null; i++) await new Promise((r) => setTimeout(r, 25));
    corral.store.db.raw.exec('DROP TRIGGER refuse');
    assert.throws(() => store.append(id, 'stdout', chunk('b')), (e: Error & { code?: string }) => e.code !== undefined && /refused by the test/.test(e.message));
    assert.equal(usesWorker(store), false, 'the failed writer is gone');
    store.append(id, 'stdout', chunk('c'));
    store.finish(id);
    const rows = corral.store.db.all<{ offset: number; size: number }>('SELECT offset, size FROM exec_output WHERE exec_id = ? ORDER BY offset', id);
    assert.deepEqual(rows.map((r) => ({ ...r })), [{ offset: 512 * 1024, size: 256 * 1024 }], 'what failed is not there; what came after is, written inline');
  } finally {
    corral.close();
  }
});
