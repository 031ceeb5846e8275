// Storage errors: a full disk gives STORAGE_FULL and changes nothing; a read-only database gives
// STORAGE_READ_ONLY on writes while reads go on. The real cases run the CLI on small tmpfs mounts
// inside an unprivileged user+mount namespace (storage-scenario.ts); the in-process cases use
// SQLite's own limits.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Corral } from '../../src/services/corral.ts';
import { isCorralError, toCorralError } from '../../src/protocol/errors.ts';
import { openCorral, ROOT, tempDir, testCaller } from '../helpers.ts';

const SCENARIO = join(ROOT, 'test', 'durability', 'storage-scenario.ts');
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Why namespaces cannot be used here, or null when they can. */
function namespaceUnavailable(): string | null {
  const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'true'], { encoding: 'utf8' });
  if (r.error) return `unshare is not installed: ${r.error.message}`;
  if (r.status !== 0) return `unprivileged user namespaces are not allowed here: ${r.stderr.trim()}`;
  return null;
}

const unavailable = namespaceUnavailable();
if (unavailable) console.log(`# storage-errors: skipping the tmpfs tests: ${unavailable}`);

describe('on real filesystems (tmpfs in a user namespace)', { skip: unavailable ?? false }, () => {
  let report: any;
  const scenario = (): any => {
    if (report) return report;
    const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', process.execPath, '--disable-warning=ExperimentalWarning', SCENARIO, tempDir()], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    report = JSON.parse(r.stdout);
    assert.equal(report.mountFailed, undefined, `mounting a tmpfs failed: ${report.mountFailed}`);
    assert.equal(report.remountFailed, undefined, `remounting read-only failed: ${report.remountFailed}`);
    return report;
  };

  test('a full disk gives STORAGE_FULL with a clear message and no partial state', { timeout: 60_000 }, () => {
    const f = scenario().full;
    assert.ok(f.writtenBeforeFull >= 3, `only ${f.writtenBeforeFull} writes fitted before the disk was full`);
    assert.deepEqual(f.failure, {
      exit: 6,
      code: 'STORAGE_FULL',
      message: 'the disk holding the Corral database is full: free space, then retry (nothing was changed)',
    });
    assert.equal(f.headAfter, f.headBefore, 'the head moved');
    assert.deepEqual(f.rowsAfter, f.rowsBefore, 'the failed write left rows behind');
    assert.ok(!f.files.includes(f.failedName), `${f.failedName} exists after its write failed`);
    assert.ok(f.files.includes('good.txt'));
    for (const [name, ok] of Object.entries(f.intact)) assert.equal(ok, true, `${name} changed`);
    assert.equal(f.integrity, 'ok');
    assert.deepEqual(f.auditVerify, { exit: 0, ok: true });
  });

  test('a read-only mount gives STORAGE_READ_ONLY on every write while reads work', { timeout: 60_000 }, () => {
    const r = scenario().readOnly;
    assert.equal(r.cat, 'the last good file\n');
    assert.ok(r.files.includes('good.txt'));
    assert.equal(r.stats, r.files.length);
    for (const op of ['write', 'mkdir', 'checkpoint', 'vaultCreate', 'gc']) {
      assert.equal(r[op].code, 'STORAGE_READ_ONLY', `${op}: ${JSON.stringify(r[op])}`);
      assert.equal(r[op].exit, 6);
      assert.match(r[op].message, /read-only/);
    }
  });

  test('a home closed cleanly and then mounted read-only can still be read', { timeout: 60_000 }, () => {
    const r = scenario().readOnlyClean;
    assert.equal(r.cat, 'kept while read-only');
    assert.equal(r.log, 2);
    assert.deepEqual(r.auditVerify, { exit: 0, ok: true });
    assert.equal(r.write.code, 'STORAGE_READ_ONLY');
    assert.equal(r.use.code, 'STORAGE_READ_ONLY');
  });

  test('once the disk has room again, writing goes on', { timeout: 60_000 }, () => {
    const r = scenario().recovered;
    assert.equal(r.write, 0);
    assert.equal(r.cat, 'written after the disk had room again');
    assert.equal(r.good, true);
    assert.equal(r.integrity, 'ok');
    assert.deepEqual(r.auditVerify, { exit: 0, ok: true });
  });
});

describe('in process', () => {
  test('SQLite reports a full database as errcode 13, mapped to STORAGE_FULL; nothing is changed', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/good.txt', text('good'));
    const head = c.store.getVault('v').head;
    const pages = (c.store.db.raw.prepare('PRAGMA page_count').get() as { page_count: number }).page_count;
    // The database may not grow past its current size plus a few pages.
    c.store.db.raw.exec(`PRAGMA max_page_count = ${pages + 4}`);
    let raw: unknown;
    try {
      c.store.db.raw.exec('BEGIN; CREATE TABLE filler(x); INSERT INTO filler VALUES (zeroblob(1000000)); COMMIT');
    } catch (e) {
      raw = e;
      // SQLite rolls back by itself on SQLITE_FULL.
      if (c.store.db.raw.isTransaction) c.store.db.raw.exec('ROLLBACK');
    }
    assert.equal((raw as { errcode: number }).errcode, 13);
    assert.equal((raw as { errstr: string }).errstr, 'database or disk is full');
    assert.throws(() => c.files.write('v', '/big.bin', new Uint8Array(1_000_000).fill(3)), (e) => isCorralError(e, 'STORAGE_FULL') && /free space/.test(e.message));
    assert.equal(c.store.getVault('v').head, head);
    assert.throws(() => c.files.cat('v', '/big.bin'), (e) => isCorralError(e, 'PATH_NOT_FOUND'));
    assert.equal(new TextDecoder().decode(c.files.cat('v', '/good.txt')), 'good');
    assert.equal(c.store.audit.verify().ok, true);
    assert.equal((c.store.db.raw.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
  });

  test('SQLite reports a write to a read-only connection as errcode 8, mapped to STORAGE_READ_ONLY', () => {
    const home = tempDir();
    const writer = openCorral(home);
    writer.vaults.create('v');
    writer.files.write('v', '/a.txt', text('a'));
    const ro = new Corral({ home, caller: testCaller, readOnly: true });
    try {
      assert.equal(new TextDecoder().decode(ro.files.cat('v', '/a.txt')), 'a');
      assert.throws(() => ro.files.write('v', '/b.txt', text('b')), (e) => isCorralError(e, 'STORAGE_READ_ONLY'));
    } finally {
      ro.close();
    }
    const direct = new DatabaseSync(join(home, 'corral.db'), { readOnly: true });
    try {
      direct.exec("INSERT INTO settings(key, value) VALUES ('x', 'y')");
      assert.fail('the write went through');
    } catch (e) {
      assert.equal((e as { errcode: number }).errcode, 8);
      assert.equal(toCorralError(e).code, 'STORAGE_READ_ONLY');
    } finally {
      direct.close();
    }
    assert.deepEqual(writer.files.ls('v', '/').map((e) => e.name), ['a.txt']);
  });

  test('a database that cannot be opened is a HOST_IO_ERROR that says what to check', () => {
    const dir = tempDir();
    // The database path is a directory: SQLite cannot open it (errcode 14, CANTOPEN).
    assert.throws(() => new DatabaseSync(dir).exec('SELECT 1'), (e) => {
      const err = toCorralError(e);
      return err.code === 'HOST_IO_ERROR' && /CORRAL_HOME/.test(err.message);
    });
  });
});
