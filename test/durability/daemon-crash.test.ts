// The daemon killed with SIGKILL while execs run, then started again: sandboxes come back, the
// processes it left are gone (never leaked), the execs in flight are lost with their output so far,
// and the vault is whole (integrity and audit chain clean).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { procStat } from '../../src/runtime/process-identity.ts';
import { CLI, corral, openCorral, tempDir } from '../helpers.ts';
import { assertHomeComplete } from './check.ts';

function call(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function startDaemon(home: string): Promise<ChildProcess> {
  const child = spawn(CLI, ['daemon'], { env: { ...process.env, CORRAL_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const socketPath = join(home, 'corral.sock');
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the daemon exited: ${err}`);
    if (existsSync(socketPath)) {
      try {
        if ((await call(socketPath, 'GET', '/v1/ping')).status === 200) return child;
      } catch {
        /* not yet */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the daemon did not answer: ${err}`);
}

const alive = (pid: number) => {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X';
};

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const backend of ['namespace', 'host'] as const) {
  test(`SIGKILL of the daemon mid-exec (${backend}): sandboxes back, processes gone, execs lost with their output, vault whole`, async () => {
    const home = tempDir();
    const seed = openCorral(home);
    seed.vaults.create('src');
    seed.files.write('src', '/keep.txt', new TextEncoder().encode('kept\n'));
    seed.close();
    const socketPath = join(home, 'corral.sock');

    let daemon = await startDaemon(home);
    try {
      const sb = JSON.parse((await call(socketPath, 'POST', '/v1/sandboxes', { vault: 'src', backend, policy: 'permissive', name: 'crashy' })).text);
      // Host execs write the checkout in place, one at a time: the second runs in a sandbox of its own.
      const other = backend === 'host' ? JSON.parse((await call(socketPath, 'POST', '/v1/sandboxes', { vault: 'src', backend, policy: 'permissive' })).text) : sb;
      const execs = [];
      for (let i = 0; i < 2; i++) {
        const r = await call(socketPath, 'POST', `/v1/sandboxes/${(i === 0 ? sb : other).id}/exec`, { shell: `echo before-${i}; echo partial > p${i}.txt; sleep 300 & sleep 300`, background: true });
        assert.equal(r.status, 202, r.text);
        execs.push(JSON.parse(r.text).id as string);
      }
      const outputOf = async (id: string) => (await call(socketPath, 'GET', `/v1/execs/${id}/output?follow=false`)).text;
      for (const [i, id] of execs.entries()) await until(`the output of exec ${i}`, async () => (await outputOf(id)).includes(`before-${i}`));
      // The output is flushed within 50 ms of arriving: give it that before the kill.
      await new Promise((r) => setTimeout(r, 200));

      const probe = openCorral(home);
      const rows = probe.store.db.all<{ id: string; supervisor_pid: number; pid: number }>("SELECT id, supervisor_pid, pid FROM execs WHERE state = 'running'");
      probe.close();
      assert.equal(rows.length, 2);
      const pids = rows.flatMap((r) => [r.supervisor_pid, r.pid]);
      assert.ok(pids.every(alive), 'the execs run before the kill');

      daemon.kill('SIGKILL');
      await new Promise((r) => daemon.once('exit', r));
      // Orphaned supervisors kill their trees at once.
      await until('the processes of the dead daemon to go', () => pids.every((p) => !alive(p)));

      daemon = await startDaemon(home);
      const list = JSON.parse((await call(socketPath, 'GET', '/v1/sandboxes')).text);
      assert.deepEqual(list.sandboxes.map((s: { id: string }) => s.id), [...new Set([sb.id, other.id])]);
      for (const [i, id] of execs.entries()) {
        const info = JSON.parse((await call(socketPath, 'GET', `/v1/execs/${id}`)).text);
        assert.equal(info.state, 'lost');
        assert.ok(info.finishedAt);
        assert.match(await outputOf(id), new RegExp(`before-${i}`));
      }
      // The sandbox works again; nothing of the lost execs was committed.
      const after = JSON.parse((await call(socketPath, 'POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'ls; cat keep.txt' })).text);
      assert.equal(after.status, 'completed', JSON.stringify(after.error));
      assert.equal(after.stdout, 'keep.txt\nkept\n');
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
    }
    const check = openCorral(home);
    try {
      assertHomeComplete(check);
    } finally {
      check.close();
    }
    const verify = corral(home, ['audit', 'verify', '--json']);
    assert.equal(verify.code, 0, verify.stderr);
  });
}
