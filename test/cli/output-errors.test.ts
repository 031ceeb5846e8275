// Output that cannot be written: a closed pipe ends quietly, a full disk is a clear error; no crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { CLI, ROOT, corral, tempDir } from '../helpers.ts';

function withStdout(home: string, args: string[], fd: number | 'pipe-closed') {
  if (fd === 'pipe-closed') {
    // `corral … | head -c 10`: the reader goes away after a few bytes.
    return spawnSync('bash', ['-c', `"${CLI}" "$@" | head -c 10 >/dev/null; exit \${PIPESTATUS[0]}`, 'sh', ...args], { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home }, encoding: 'utf8' });
  }
  return spawnSync(CLI, args, { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home }, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
}

test('a closed pipe ends quietly and a full output disk is HOST_IO_ERROR, for data and tar streams', () => {
  const home = tempDir();
  assert.equal(corral(home, ['vault', 'create', 'v', '--use']).code, 0);
  assert.equal(corral(home, ['write', '/big.txt'], { input: 'x'.repeat(2_000_000) }).code, 0);
  for (const args of [['cat', '/big.txt'], ['export', '/', '--tar', '-']]) {
    const piped = withStdout(home, args, 'pipe-closed');
    assert.equal(piped.status, 0, `${args.join(' ')} | head: ${piped.stderr}`);
    assert.doesNotMatch(piped.stderr, /at .*\.ts:\d+|Unhandled/);
    const full = openSync('/dev/full', 'w');
    try {
      const r = withStdout(home, args, full);
      assert.equal(r.status, 6, `${args.join(' ')} > /dev/full: ${r.stderr}`);
      assert.match(r.stderr, /HOST_IO_ERROR/);
      assert.doesNotMatch(r.stderr, /Unhandled|node:events/);
    } finally {
      closeSync(full);
    }
  }
});
