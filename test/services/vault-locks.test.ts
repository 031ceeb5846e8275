import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VaultLocks } from '../../src/services/vault-locks.ts';
import { CorralStore } from '../../src/store/corral-store.ts';
import { tempDir } from '../helpers.ts';

function openStore(home = tempDir()): CorralStore {
  const store = new CorralStore(home);
  after(() => store.close());
  return store;
}

/** Resolves to the value, or to 'pending' if it has not settled after `ms` (the other side had ample time). */
async function settled<T>(p: Promise<T>, ms = 150): Promise<T | 'pending'> {
  return Promise.race([p, sleep(ms).then(() => 'pending' as const)]);
}

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Child {
  pid: number;
  /** Resolves with the first line of `event` the child printed. */
  event(event: 'waiting' | 'granted' | 'released'): Promise<Record<string, unknown>>;
  /** Ends the child's stdin: it releases and exits. */
  release(): Promise<void>;
  kill(): Promise<void>;
}

/** Another Corral process holding (or waiting for) a lease on `key` in `home`. */
function child(home: string, mode: 'shared' | 'exclusive' | 'dirty', key: string): Child {
  const proc = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(import.meta.dirname, 'vault-locks-child.ts'), home, mode, key], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(proc);
  const exited = new Promise<void>((r) => proc.on('exit', () => (children.delete(proc), r())));
  const events: Record<string, unknown>[] = [];
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  proc.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      events.push(JSON.parse(out.slice(0, nl)) as Record<string, unknown>);
      out = out.slice(nl + 1);
    }
    for (const l of listeners) l();
  });
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return {
    pid: proc.pid!,
    event: (name) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const e = events.find((x) => x.event === name);
          if (e) {
            listeners.delete(check);
            resolve(e);
          }
        };
        listeners.add(check);
        void exited.then(() => setImmediate(() => listeners.has(check) && (listeners.delete(check), reject(new Error(`child exited before '${name}': ${err}`)))));
        check();
      }),
    release: async () => {
      proc.stdin!.end();
      await exited;
      assert.equal(proc.exitCode, 0, err);
    },
    kill: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** The host column this process writes (boot and pid namespace), read back from a real lease. */
async function hostOf(store: CorralStore, locks: VaultLocks): Promise<string> {
  const release = await locks.shared('probe');
  const row = store.db.get<{ host: string }>("SELECT host FROM leases WHERE key = 'probe'")!;
  release();
  return row.host;
}

function fakeLease(store: CorralStore, key: string, fields: { mode: 'shared' | 'exclusive'; pid: number; started: string; host: string; dirty?: boolean }): void {
  store.db.run(
    'INSERT INTO leases(key, holder, mode, granted, pid, started, host, dirty, acquired_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?, 0)',
    key, `fake-${fields.pid}`, fields.mode, fields.pid, fields.started, fields.host, fields.dirty ? 1 : 0,
  );
}

function leaseCount(store: CorralStore): number {
  return store.db.get<{ n: number }>('SELECT count(*) AS n FROM leases')!.n;
}

// ---- one process ------------------------------------------------------------------------------

test('readers share, a writer waits for them and holds back later readers', async () => {
  const locks = new VaultLocks(openStore());
  const log: string[] = [];
  const r1 = await locks.shared('v');
  const r2 = await locks.shared('v');
  const w = locks.exclusive('v').then((l) => (log.push('writer'), l));
  await sleep(5);
  const r3 = locks.shared('v').then((rel) => (log.push('reader3'), rel));
  await sleep(5);
  assert.deepEqual(log, []);
  r1();
  r2();
  const wl = await w;
  await sleep(5);
  assert.deepEqual(log, ['writer'], 'the reader behind the writer waits');
  wl.release();
  (await r3)();
  assert.deepEqual(log, ['writer', 'reader3']);
});

test('a reader queued before a writer is served first (no deadlock)', async () => {
  const locks = new VaultLocks(openStore());
  const first = await locks.exclusive('v');
  const log: string[] = [];
  const r = locks.shared('v').then((rel) => (log.push('r'), rel));
  const w = locks.exclusive('v').then((l) => (log.push('w'), l));
  first.release();
  (await r)();
  (await w).release();
  assert.deepEqual(log, ['r', 'w']);
});

test('downgrade keeps the lock shared and lets readers in, not writers', async () => {
  const locks = new VaultLocks(openStore());
  const w = await locks.exclusive('v');
  const release = w.downgrade();
  const reader = await locks.shared('v');
  let writer = false;
  const w2 = locks.exclusive('v').then((l) => ((writer = true), l));
  await sleep(5);
  assert.equal(writer, false);
  reader();
  release();
  (await w2).release();
  assert.equal(writer, true);
  assert.throws(() => w.downgrade(), /already released/);
});

test('different vaults do not block each other', async () => {
  const locks = new VaultLocks(openStore());
  const a = await locks.exclusive('a');
  const b = await locks.exclusive('b');
  a.release();
  b.release();
});

test('releasing twice is harmless and leaves no rows behind', async () => {
  const store = openStore();
  const locks = new VaultLocks(store);
  const w = await locks.exclusive('v');
  w.release();
  w.release();
  const r = await locks.shared('v');
  r();
  r();
  const d = (await locks.exclusive('v')).downgrade();
  d();
  d();
  assert.equal(leaseCount(store), 0);
  // Two instances over one home (two services of one process) exclude each other too.
  const other = new VaultLocks(store);
  const held = await locks.exclusive('v');
  const waiting = other.shared('v');
  assert.equal(await settled(waiting, 30), 'pending');
  held.release();
  (await waiting)();
  assert.equal(leaseCount(store), 0);
});

test('an aborted shared wait rejects, leaves the queue and blocks no one', async () => {
  const store = openStore();
  const locks = new VaultLocks(store);
  const w = await locks.exclusive('v');
  const ac = new AbortController();
  const waiting = locks.shared('v', ac.signal);
  await sleep(5);
  ac.abort(new Error('gave up'));
  await assert.rejects(waiting, /gave up/);
  w.release();
  assert.equal(leaseCount(store), 0);
  (await locks.exclusive('v')).release();
  await assert.rejects(locks.shared('v', AbortSignal.abort()), { name: 'AbortError' });
});

// ---- across processes -------------------------------------------------------------------------

test('another process holding exclusive blocks shared and exclusive here until it releases', async () => {
  const home = tempDir();
  const locks = new VaultLocks(openStore(home));
  const other = child(home, 'exclusive', 'v');
  assert.equal((await other.event('granted')).recovered, false);
  const shared = locks.shared('v');
  const exclusive = locks.exclusive('v');
  assert.equal(await settled(shared), 'pending');
  assert.equal(await settled(exclusive, 10), 'pending');
  await other.release();
  (await shared)();
  (await exclusive).release();
});

test('exclusive here blocks another process; shared is shared across processes', async () => {
  const home = tempDir();
  const store = openStore(home);
  const locks = new VaultLocks(store);
  const w = await locks.exclusive('v');
  const reader = child(home, 'shared', 'v');
  await reader.event('waiting');
  assert.equal(await settled(reader.event('granted')), 'pending');
  const release = w.downgrade();
  await reader.event('granted');
  // Both hold it shared now: a second reader here gets in at once, a writer here waits for the other process.
  const mine = await locks.shared('v');
  const writer = locks.exclusive('v');
  release();
  mine();
  assert.equal(await settled(writer), 'pending');
  await reader.release();
  (await writer).release();
  assert.equal(leaseCount(store), 0);
});

test("a waiting writer holds back another process's new readers (no starvation)", async () => {
  const home = tempDir();
  const locks = new VaultLocks(openStore(home));
  const first = child(home, 'shared', 'v');
  await first.event('granted');
  const writer = locks.exclusive('v');
  assert.equal(await settled(writer, 50), 'pending');
  const second = child(home, 'shared', 'v');
  await second.event('waiting');
  assert.equal(await settled(second.event('granted')), 'pending', 'a reader arriving after the writer waits for it');
  await first.release();
  const w = await writer;
  assert.equal(await settled(second.event('granted'), 50), 'pending');
  w.release();
  await second.event('granted');
  await second.release();
});

test('a process SIGKILLed holding a dirty exclusive lease: the next exclusive holder is recovered', async () => {
  const home = tempDir();
  const store = openStore(home);
  const locks = new VaultLocks(store);
  const host = child(home, 'dirty', 'v');
  await host.event('granted');
  const next = locks.exclusive('v');
  assert.equal(await settled(next), 'pending');
  await host.kill();
  const lease = await next;
  assert.equal(lease.recovered, true, 'the dead holder wrote in place');
  lease.release();
  const again = await locks.exclusive('v');
  assert.equal(again.recovered, true, 'a holder that released without saying it recovered leaves the mark');
  again.recoveredDone();
  again.release();
  const after = await locks.exclusive('v');
  assert.equal(after.recovered, false, 'cleared once a holder said it recovered');
  after.release();
  // A holder that leaves the checkout dirty on purpose (an escaped command) marks it too.
  const leaving = await locks.exclusive('v');
  leaving.release({ leaveDirty: true });
  const marked = await locks.exclusive('v');
  assert.equal(marked.recovered, true);
  marked.recoveredDone();
  marked.release();

  // A clean (not dirty) holder's death frees the lock without recovery.
  const clean = child(home, 'exclusive', 'v');
  await clean.event('granted');
  await clean.kill();
  const l2 = await locks.exclusive('v');
  assert.equal(l2.recovered, false);
  l2.release();
  const dirty = child(home, 'dirty', 'v');
  await dirty.event('granted');
  await dirty.kill();
  const l3 = await locks.exclusive('v');
  assert.equal(l3.recovered, true);
  l3.recoveredDone();
  l3.downgrade()();
  assert.equal((await locks.exclusive('v', {})).recovered, false);
});

test('a recovering holder that dies too leaves the checkout marked for the next one', async () => {
  const home = tempDir();
  const store = openStore(home);
  const locks = new VaultLocks(store);
  const first = child(home, 'dirty', 'v');
  await first.event('granted');
  await first.kill();
  const second = child(home, 'exclusive', 'v');
  assert.equal((await second.event('granted')).recovered, true);
  await second.kill();
  const lease = await locks.exclusive('v');
  assert.equal(lease.recovered, true);
  lease.release();
});

test('a lease whose pid now names another process (start time differs) counts as dead', async () => {
  const store = openStore();
  const locks = new VaultLocks(store);
  const host = await hostOf(store, locks);
  // pid 1 is alive, but not the process that took this lease.
  fakeLease(store, 'v', { mode: 'exclusive', pid: 1, started: 'not-its-start-time', host, dirty: true });
  const lease = await locks.exclusive('v');
  assert.equal(lease.recovered, true);
  lease.release();
  assert.equal(leaseCount(store), 0);
});

test('a live foreign holder blocks until its process exits, without a release', async () => {
  const store = openStore();
  const locks = new VaultLocks(store);
  const host = await hostOf(store, locks);
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.add(sleeper);
  const stat = readFileSync(`/proc/${sleeper.pid}/stat`, 'latin1');
  const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
  fakeLease(store, 'v', { mode: 'exclusive', pid: sleeper.pid!, started, host });
  const reader = locks.shared('v');
  assert.equal(await settled(reader), 'pending');
  sleeper.kill('SIGKILL');
  (await reader)();
  // A row from an earlier boot is dead; one from another pid namespace cannot be checked and is kept (fail closed).
  fakeLease(store, 'w', { mode: 'exclusive', pid: process.pid, started: 'x', host: `another-boot/${host.split('/')[1]}` });
  (await locks.exclusive('w')).release();
  fakeLease(store, 'x', { mode: 'exclusive', pid: 999_999_999, started: 'x', host: `${host.split('/')[0]}/pid:[1]` });
  const ac = new AbortController();
  const blocked = locks.shared('x', ac.signal);
  assert.equal(await settled(blocked, 50), 'pending');
  ac.abort();
  await assert.rejects(blocked, { name: 'AbortError' });
});

test('a lease attached to a helper process stays held while the helper lives, even after its holder is gone', async () => {
  const home = tempDir();
  const store = openStore(home);
  const locks = new VaultLocks(store);
  const holder = child(home, 'exclusive', 'v');
  await holder.event('granted');
  const helper = spawn('sleep', ['30'], { stdio: 'ignore' });
  store.db.run("UPDATE leases SET helper_pid = ?, helper_started = '' WHERE key = 'v' AND granted = 1", helper.pid!);
  await holder.kill();
  const next = locks.exclusive('v');
  assert.equal(await settled(next), 'pending', 'the helper (an exec supervisor) still runs');
  helper.kill('SIGKILL');
  (await next).release();
});
