import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, parseSize } from '../../src/protocol/units.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

test('durations: ms, s, m, h and plain milliseconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('250'), 250);
  for (const bad of ['', '-1s', '5 minutes', '1e9', '2d', 'abc', '99999999999'])
    assert.throws(() => parseDuration(bad, 'timeout'), (e) => isCorralError(e, 'INVALID_ARGUMENT') && /timeout must be a duration/.test(e.message), bad);
});

test('sizes: k, m, g in powers of 1024, or bytes', () => {
  assert.equal(parseSize('64m', 'memory'), 64 * 1024 * 1024);
  assert.equal(parseSize('1g', 'memory'), 1024 ** 3);
  assert.equal(parseSize('512K', 'memory'), 512 * 1024);
  assert.equal(parseSize('4096', 'memory'), 4096);
  for (const bad of ['', '-1', '1.5g', '1x', '9999999999999t']) assert.throws(() => parseSize(bad, 'memory'), (e) => isCorralError(e, 'INVALID_ARGUMENT'), bad);
});
