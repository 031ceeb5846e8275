import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Database } from '../../src/store/database.ts';
import { tempDir } from '../helpers.ts';

test('a COMMIT that fails rolls back and leaves the connection usable', () => {
  const db = new Database(join(tempDir(), 'x.db'));
  db.raw.exec('PRAGMA defer_foreign_keys = ON');
  // A checkpoint naming a vault that does not exist passes the insert and fails at COMMIT.
  assert.throws(() => db.transaction(() => db.run("INSERT INTO checkpoints(vault_id, name, commit_id, created_at) VALUES (42, 'x', 'nope', 0)")), /FOREIGN KEY/);
  assert.equal(db.inTransaction, false);
  assert.equal(db.raw.isTransaction, false);
  assert.equal(db.get<{ n: number }>('SELECT count(*) AS n FROM checkpoints')!.n, 0);
  db.transaction(() => db.run("INSERT INTO settings(key, value) VALUES ('k', 'v')"));
  assert.equal(db.get<{ value: string }>("SELECT value FROM settings WHERE key = 'k'")!.value, 'v');
  db.close();
});

test('nested transactions are savepoints: an inner failure undoes only the inner part', () => {
  const db = new Database(join(tempDir(), 'y.db'));
  db.transaction(() => {
    db.run("INSERT INTO settings(key, value) VALUES ('outer', '1')");
    assert.throws(() =>
      db.transaction(() => {
        db.run("INSERT INTO settings(key, value) VALUES ('inner', '1')");
        throw new Error('inner fails');
      }),
    );
  });
  assert.deepEqual(db.all<{ key: string }>('SELECT key FROM settings ORDER BY key').map((r) => r.key), ['outer']);
  assert.equal(db.inTransaction, false);
  db.close();
});

test('readTransaction sees one snapshot and ends its transaction', () => {
  const path = join(tempDir(), 'z.db');
  const a = new Database(path);
  const b = new Database(path);
  a.run("INSERT INTO settings(key, value) VALUES ('k', '1')");
  const seen = a.readTransaction(() => {
    const first = a.get<{ value: string }>("SELECT value FROM settings WHERE key = 'k'")!.value;
    b.run("UPDATE settings SET value = '2' WHERE key = 'k'");
    const second = a.get<{ value: string }>("SELECT value FROM settings WHERE key = 'k'")!.value;
    return [first, second];
  });
  assert.deepEqual(seen, ['1', '1']);
  assert.equal(a.raw.isTransaction, false);
  assert.equal(a.get<{ value: string }>("SELECT value FROM settings WHERE key = 'k'")!.value, '2');
  a.close();
  b.close();
});
