// Crash safety: a worker writes in a loop (write, mkdir, rm, mv, checkpoint, fork, gc, compact)
// and is killed with SIGKILL at random moments, again and again. Afterwards the database must be
// intact, the audit chain whole, every head and checkpoint complete, and every write the worker
// reported as done must be there (at most one unreported commit per kill).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Corral } from '../../src/services/corral.ts';
import { corral, ROOT, tempDir, testCaller } from '../helpers.ts';
import { assertHomeComplete } from './check.ts';

const WRITER = join(ROOT, 'test', 'durability', 'writer.ts');
const KILLS = 18;

interface Run {
  lines: string[];
  killed: boolean;
  stderr: string;
}

/** Starts the worker, waits until it is ready, lets it work for a random while, then SIGKILLs it. */
function runAndKill(home: string, workMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', WRITER, 'crash', home], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    const failsafe = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (!timer && out.includes('ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), workMs);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(failsafe);
      if (timer) clearTimeout(timer);
      // Only whole lines count: a line cut by the kill was never fully reported.
      const lines = out.split('\n').slice(0, -1);
      resolve({ lines, killed: signal === 'SIGKILL', stderr: err });
    });
  });
}

test('SIGKILL at random moments never loses a reported write nor leaves a half-written one', { timeout: 120_000 }, async (t) => {
  const home = tempDir();
  const reported: string[] = [];
  const checkpoints = new Map<string, string>();
  const forks = new Set<string>();
  let totalOps = 0;
  for (let i = 0; i < KILLS; i++) {
    const run = await runAndKill(home, 40 + Math.floor(Math.random() * 500));
    assert.ok(run.killed, `the worker stopped by itself: ${run.stderr}`);
    for (const line of run.lines) {
      const [kind, a, b, c] = line.split(' ');
      totalOps++;
      if (kind === 'commit' && a === 'main') reported.push(b!);
      else if (kind === 'checkpoint') checkpoints.set(a!, b!);
      else if (kind === 'fork') forks.add(a!);
      else if (kind === 'deleted') forks.delete(a!);
      void c;
    }
  }
  assert.ok(reported.length >= KILLS, `the worker got too little done to mean anything: ${reported.length} commits`);

  const db = new DatabaseSync(join(home, 'corral.db'));
  assert.equal((db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
  assert.deepEqual(db.prepare('PRAGMA foreign_key_check').all(), []);
  db.close();

  const verify = corral(home, ['audit', 'verify', '--json']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.equal(verify.json.ok, true);

  const c = new Corral({ home, caller: testCaller });
  try {
    assertHomeComplete(c);
    // Main's history: the create commit, every reported commit in order, and at most one
    // unreported commit per kill (done, then killed before the line was written).
    const chain: string[] = [];
    for (let id: string | null = c.store.getVault('main').head; id; id = c.store.getCommit(id).parent) chain.push(id);
    chain.reverse();
    assert.equal(c.store.getCommit(chain[0]!).message, 'create vault');
    const positions = reported.map((id) => chain.indexOf(id));
    assert.ok(positions.every((p) => p > 0), 'a reported commit is missing from the history');
    assert.ok(positions.every((p, i) => i === 0 || p > positions[i - 1]!), 'reported commits are out of order');
    assert.ok(chain.length - 1 >= reported.length);
    assert.ok(chain.length - 1 <= reported.length + KILLS, `${chain.length - 1} commits for ${reported.length} reported`);
    t.diagnostic(`${KILLS} kills, ${totalOps} operations reported, ${reported.length} commits on main reported, ${chain.length - 1 - reported.length} done but unreported`);
    const main = c.store.getVault('main');
    for (const [name, commit] of checkpoints) assert.equal(c.store.findCheckpoint(main, name)?.commit, commit, `checkpoint ${name}`);
    for (const name of forks) assert.ok(c.store.findVault(name), `fork ${name} is gone`);

    // After recovery the store works normally, gc included.
    c.files.write('main', '/after-crashes.txt', new TextEncoder().encode('alive'));
    c.maintenance.gc({ graceSeconds: 0 });
    // Checked through a fresh Corral: this one's tree cache could hide a row gc deleted.
    const fresh = new Corral({ home, caller: testCaller });
    try {
      assertHomeComplete(fresh);
      assert.equal(new TextDecoder().decode(fresh.files.cat('main', '/after-crashes.txt')), 'alive');
      assert.equal(fresh.store.audit.verify().ok, true);
    } finally {
      fresh.close();
    }
  } finally {
    c.close();
  }
  assert.ok(totalOps > reported.length);
});
