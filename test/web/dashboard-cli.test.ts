import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corral, tempDir } from '../helpers.ts';

test('corral dashboard without a running daemon says how to start one', () => {
  const r = corral(tempDir(), ['dashboard', '--no-open', '--json']);
  assert.notEqual(r.code, 0);
  const err = (r.json as { error: { code: string; message: string } }).error;
  assert.equal(err.code, 'DAEMON_NOT_RUNNING');
  assert.match(err.message, /corral daemon start/);
});

test('corral dashboard refuses a bad port', () => {
  const r = corral(tempDir(), ['dashboard', '--port', '70000', '--json']);
  assert.equal((r.json as { error: { code: string } }).error.code, 'INVALID_ARGUMENT');
});
