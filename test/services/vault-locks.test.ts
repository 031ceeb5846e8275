import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { VaultLocks } from '../../src/services/vault-locks.ts';

test('readers share, a writer waits for them and holds back later readers', async () => {
  const locks = new VaultLocks();
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
  const locks = new VaultLocks();
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
  const locks = new VaultLocks();
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
});

test('different vaults do not block each other', async () => {
  const locks = new VaultLocks();
  const a = await locks.exclusive('a');
  const b = await locks.exclusive('b');
  a.release();
  b.release();
});
