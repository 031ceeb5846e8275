import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWithin, normalizePath, parentOf, validateCheckpointName, validateVaultName } from '../../src/protocol/paths.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

function rejects(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isCorralError(e) && e.code === code);
}

test('paths are normalised to absolute, clean form', () => {
  assert.equal(normalizePath(''), '/');
  assert.equal(normalizePath('/'), '/');
  assert.equal(normalizePath('a/b'), '/a/b');
  assert.equal(normalizePath('//a///b/./c/'), '/a/b/c');
  assert.equal(normalizePath('/a/b/../c'), '/a/c');
  assert.equal(normalizePath('/a/..'), '/');
  assert.equal(normalizePath('/ünï/cödé 文字'), '/ünï/cödé 文字');
});

test('.. that escapes the root, NUL, long components and wrong types are rejected', () => {
  rejects(() => normalizePath('..'), 'INVALID_PATH');
  rejects(() => normalizePath('/../etc/passwd'), 'INVALID_PATH');
  rejects(() => normalizePath('/a/../../b'), 'INVALID_PATH');
  rejects(() => normalizePath('/a\0b'), 'INVALID_PATH');
  rejects(() => normalizePath('/' + 'x'.repeat(256)), 'INVALID_PATH');
  rejects(() => normalizePath('/' + 'é'.repeat(128)), 'INVALID_PATH'); // 256 bytes in UTF-8
  assert.equal(normalizePath('/' + 'x'.repeat(255)), '/' + 'x'.repeat(255));
  rejects(() => normalizePath('/a'.repeat(3000)), 'INVALID_PATH');
  rejects(() => normalizePath(42 as unknown as string), 'INVALID_PATH');
  rejects(() => normalizePath(null as unknown as string), 'INVALID_PATH');
});

test('path helpers', () => {
  assert.equal(parentOf('/a/b'), '/a');
  assert.equal(parentOf('/a'), '/');
  assert.equal(parentOf('/'), '/');
  assert.ok(isWithin('/a/b', '/a'));
  assert.ok(isWithin('/a', '/a'));
  assert.ok(!isWithin('/ab', '/a'));
  assert.ok(isWithin('/x', '/'));
});

test('vault names: 1-64 of [A-Za-z0-9_-], not starting with - or .', () => {
  for (const ok of ['a', 'A-b_9', 'x'.repeat(64), '_x', '9'])
    assert.equal(validateVaultName(ok), ok);
  for (const bad of ['', '-x', '.x', 'a b', 'a/b', 'x'.repeat(65), 'é', 'a\0', '..', 'a.b', 12 as unknown as string, undefined as unknown as string])
    rejects(() => validateVaultName(bad), 'INVALID_NAME');
});

test('checkpoint names', () => {
  assert.equal(validateCheckpointName('cp-2026-11-23T10-00-00-000Z'), 'cp-2026-11-23T10-00-00-000Z');
  for (const bad of ['', 'HEAD', '-x', '.x', 'a b', 'a/b', 'x'.repeat(129)]) rejects(() => validateCheckpointName(bad), 'INVALID_NAME');
});
