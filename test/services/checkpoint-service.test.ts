import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Corral } from '../../src/services/corral.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { openCorral, tempDir, testCaller } from '../helpers.ts';

const enc = (s: string) => new TextEncoder().encode(s);

test('default checkpoint names carry a millisecond timestamp and never collide, even within one millisecond', () => {
  const frozen = Date.parse('2026-11-23T10:00:00.123Z');
  const c = new Corral({ home: tempDir(), caller: testCaller, now: () => frozen });
  after(() => c.close());
  c.vaults.create('v');
  const names = Array.from({ length: 4 }, () => c.checkpoints.save('v').name);
  assert.deepEqual(names, ['cp-2026-11-23T10-00-00-123Z', 'cp-2026-11-23T10-00-00-123Z-2', 'cp-2026-11-23T10-00-00-123Z-3', 'cp-2026-11-23T10-00-00-123Z-4']);
  assert.equal(new Set(c.checkpoints.list('v').map((x) => x.name)).size, 4);
});

test('save, info, list, restore (undoable), delete', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a', enc('one'));
  const saved = c.checkpoints.save('v', 'first', 'a note');
  assert.equal(saved.files, 1);
  assert.equal(saved.message, 'a note');
  assert.throws(() => c.checkpoints.save('v', 'first'), (e: unknown) => isCorralError(e, 'CHECKPOINT_EXISTS'));
  c.files.write('v', '/a', enc('two'));
  c.files.write('v', '/b', enc('new'));
  const before = c.store.getVault('v').head;
  const r = c.checkpoints.restore('v', 'first');
  assert.equal(r.previous, before);
  assert.equal(r.commit.parent, before);
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/a')), 'one');
  assert.throws(() => c.files.cat('v', '/b'), (e: unknown) => isCorralError(e, 'PATH_NOT_FOUND'));
  // Undo: the state before the restore is a commit, and restoring it brings /b back.
  c.checkpoints.restore('v', r.previous);
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/b')), 'new');
  const info = c.checkpoints.info('v', 'first');
  assert.equal(info.commit, saved.commit);
  assert.deepEqual(c.checkpoints.list('v').map((x) => x.name), ['first']);
  c.checkpoints.delete('v', 'first');
  assert.deepEqual(c.checkpoints.list('v'), []);
  assert.throws(() => c.checkpoints.info('v', 'first'), (e: unknown) => isCorralError(e, 'CHECKPOINT_NOT_FOUND'));
  // The commit it named stays in history.
  assert.ok(c.history.log('v').some((x) => x.id === saved.commit));
  assert.ok(c.store.audit.verify().ok);
});

test('a restore over the quota is refused and changes nothing', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/big', enc('x'.repeat(100)));
  c.checkpoints.save('v', 'big');
  c.files.rm('v', '/big');
  c.vaults.setQuota('v', { maxBytes: 10 });
  const head = c.store.getVault('v').head;
  assert.throws(() => c.checkpoints.restore('v', 'big'), (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED'));
  assert.equal(c.store.getVault('v').head, head);
});
