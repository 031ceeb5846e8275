import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecOutputStore } from '../../src/services/exec-output-store.ts';
import { openCorral } from '../helpers.ts';

test('output store: chunks coalesced into rows read back exactly from any offset; the bound drops whole old rows; ends survive flushes', () => {
  const corral = openCorral();
  let now = 1_000_000;
  const store = new ExecOutputStore(corral.store.db, { maxBytes: 1024, flushBytes: 1 << 30, nowUs: () => now });
  const id = 'exec_00000000000000000000000000';
  const expected = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  for (let i = 0; i < 300; i++) {
    const stream = i % 3 === 0 ? 'stderr' : 'stdout';
    const data = Buffer.from(`${stream}-${i};`);
    store.append(id, stream, data);
    expected[stream] = Buffer.concat([expected[stream], data]);
    // Bursts of chunks within a millisecond, then a pause.
    now += i % 10 === 9 ? 5000 : 50;
    if (i % 50 === 49) store.flush(id);
  }
  store.finish(id);
  const rows = corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM exec_output WHERE exec_id = ?', id)!.n;
  assert.ok(rows < 100, `coalesced into fewer rows: ${rows}`);
  assert.deepEqual(store.ends(id), { stdout: expected.stdout.length, stderr: expected.stderr.length });
  for (const stream of ['stdout', 'stderr'] as const) {
    const all = expected[stream];
    const first = store.read(id, stream, 0);
    assert.ok(first.start > 0 && first.start <= all.length - 1024, `the bound dropped the oldest rows (start ${first.start})`);
    for (const from of [first.start, first.start + 1, all.length - 100, all.length - 1, all.length]) {
      let at = from;
      const got: Buffer[] = [];
      for (;;) {
        const page = store.read(id, stream, at, 300);
        for (const c of page.chunks) {
          assert.equal(c.offset, at);
          got.push(c.data);
          at += c.data.length;
        }
        if (page.chunks.length === 0 || at >= page.end) break;
      }
      assert.deepEqual(Buffer.concat(got), all.subarray(from), `${stream} from ${from}`);
    }
  }
});
