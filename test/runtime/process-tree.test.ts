// Stopping and continuing a real process tree: every descendant stopped (the root left running),
// a child forked after the walk began is caught too, and SIGCONT lets them all run again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { procStat } from '../../src/runtime/process-identity.ts';
import { continueTree, descendants, stopTree } from '../../src/runtime/process-tree.ts';

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('stopTree stops every descendant of the root, not the root; continueTree resumes them', async (t) => {
  // The root (sh) starts two background loops, each with its own children, and waits.
  const root = spawn('sh', ['-c', 'for i in 1 2; do (while :; do sleep 0.01; done) & done; wait'], { stdio: 'ignore' });
  t.after(() => {
    for (const pid of descendants(root.pid!)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    root.kill('SIGKILL');
  });
  await until('two loops with a sleep each', () => descendants(root.pid!).length >= 4);

  const { pids, settled } = await stopTree(root.pid!);
  assert.equal(settled, true);
  assert.ok(pids.length >= 4, `stopped ${pids.length}`);
  const now = descendants(root.pid!);
  assert.ok(now.length >= 2);
  // A sleep that ended just before its stopped parent could reap it stays a zombie until then.
  for (const pid of now) assert.ok(['T', 'Z'].includes(procStat(pid)?.state ?? ''), `pid ${pid} is stopped`);
  assert.notEqual(procStat(root.pid!)?.state, 'T', 'the root keeps running');
  // Stopped processes fork nothing: the tree stays as it is.
  await sleep(100);
  assert.deepEqual(descendants(root.pid!), now);

  const continued = continueTree(root.pid!);
  assert.deepEqual([...continued].sort(), [...now].sort());
  await until('the loops to run again (their sleeps come and go)', () => descendants(root.pid!).some((p) => !now.includes(p)));
  for (const pid of descendants(root.pid!)) assert.notEqual(procStat(pid)?.state, 'T');
});

test('descendants of a process without children, or of a gone pid, is empty', async () => {
  const leaf = spawn('sleep', ['5'], { stdio: 'ignore' });
  await until('sleep to start', () => procStat(leaf.pid!) !== undefined);
  assert.deepEqual(descendants(leaf.pid!), []);
  leaf.kill('SIGKILL');
  await new Promise((r) => leaf.on('exit', r));
  assert.deepEqual(descendants(leaf.pid!), []);
  assert.deepEqual(await stopTree(leaf.pid!), { pids: [], settled: true });
});
