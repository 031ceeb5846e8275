// Corral itself crashes (SIGKILL) in the middle of an exec: the command's whole tree still dies,
// and the next run removes what the dead one left (scratch directories, cgroups).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pidAlive } from '../../src/runtime/cgroups.ts';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, ROOT, corral, tempDir } from '../helpers.ts';

async function waitFor(what: string, check: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** `corral ARGS` as a child process, resolved once its command printed `ready`. */
async function startCorral(home: string, env: Record<string, string>, args: string[]): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(CLI, args, { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '', NO_COLOR: '1', ...env } });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor('the command to start', () => out.includes('ready'));
  return child;
}

for (const backend of ['host', 'namespace'] as const)
  test(`${backend}: a SIGKILLed Corral takes its exec's whole tree down; the next run cleans up`, async () => {
    const home = tempDir();
    const scratch = tempDir('corral-scratch-');
    const env = { CORRAL_SCRATCH: scratch };
    assert.equal(corral(home, ['vault', 'create', 'v'], { env }).code, 0);
    // The detached grandchild ignores SIGTERM; it is found on the host by the name it runs under.
    const tag = `corral-crash-${process.pid}-${backend}`;
    const script = `setsid bash -c 'trap "" TERM; exec -a ${tag} sleep 1000' & echo ready; sleep 1000`;
    const child = await startCorral(home, env, ['--vault', 'v', 'exec', '--backend', backend, '--policy', 'permissive', '--grace', '300ms', '--pids', '100', '--shell', script]);
    const grandchildren = (): number[] =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith(tag);
          } catch {
            return false;
          }
        })
        .map(Number);
    await waitFor('the detached grandchild', () => grandchildren().length === 1);
    const [gpid] = grandchildren();
    assert.ok(readdirSync(scratch).some((n) => n.startsWith(`x-${child.pid}-`)) || backend === 'host', 'the exec has a scratch dir');
    const exited = new Promise((r) => child.on('exit', r));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    await waitFor('the grandchild to die', () => !pidAlive(gpid!));
    const staleGroups = (): string[] =>
      ['memory', 'pids'].flatMap((c) => {
        const dir = `/sys/fs/cgroup/${c}`;
        if (!existsSync(dir)) return [];
        const found: string[] = [];
        const walk = (d: string, depth: number): void => {
          if (depth > 6) return;
          for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) {
            if (e.name.startsWith(`${child.pid}-`)) found.push(join(d, e.name));
            walk(join(d, e.name), depth + 1);
          }
        };
        walk(dir, 0);
        return found;
      });
    // The dead run's cgroups (--pids makes one) are usually still there now; not asserted, since any
    // other Corral process's first exec (test files run in parallel) may already have removed them.
    // The supervisor finishes killing its tree, then the next run removes the dead run's scratch directories and cgroups.
    await waitFor('the dead run\'s groups to empty', () => staleGroups().every((g) => readFileSync(join(g, 'cgroup.procs'), 'utf8').trim() === ''));
    const r = corral(home, ['--vault', 'v', 'exec', '--backend', backend, '--policy', 'permissive', '--', 'true'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(scratch).filter((n) => n.startsWith(`x-${child.pid}-`)), []);
    const stale = staleGroups();
    assert.deepEqual(stale, [], 'no cgroup of the dead run is left');
  });

test('a host exec killed with Corral leaves no leftovers for the next exec to commit', async () => {
  const home = tempDir();
  const scratch = tempDir('corral-scratch-');
  const env = { CORRAL_SCRATCH: scratch };
  assert.equal(corral(home, ['vault', 'create', 'v'], { env }).code, 0);
  const child = await startCorral(home, env, ['--vault', 'v', 'exec', '--backend', 'host', '--policy', 'permissive', '--grace', '200ms', '--shell', 'echo junk > crashjunk.txt; echo ready; sleep 1000']);
  process.kill(child.pid!, 'SIGKILL');
  await waitFor('Corral to be gone', () => !pidAlive(child.pid!));
  const r = corral(home, ['--vault', 'v', 'exec', '--json', '--backend', 'host', '--policy', 'permissive', '--', 'ls'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.stdout, '', 'the checkout was put back to the head before the next command');
  assert.equal(r.json.changes.commit, null);
  assert.match(r.json.warnings.join('\n'), /died while it held the vault's checkout/);
  assert.deepEqual(corral(home, ['--vault', 'v', 'ls', '/', '--json']).json.entries, []);
});

test('a command that traps SIGTERM cannot write after its Corral was killed: no grace for orphans, and the lease outlives Corral until its supervisor is done', async () => {
  const home = tempDir();
  const scratch = tempDir('corral-scratch-');
  const env = { CORRAL_SCRATCH: scratch };
  assert.equal(corral(home, ['vault', 'create', 'v'], { env }).code, 0);
  const child = await startCorral(home, env, ['--vault', 'v', 'exec', '--backend', 'host', '--policy', 'permissive', '--grace', '10s', '--shell', 'trap "sleep 1; echo late > late.txt; exit 0" TERM; echo ready; sleep 100 & wait']);
  const exited = new Promise((r) => child.on('exit', r));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
  const r = corral(home, ['--vault', 'v', 'exec', '--json', '--backend', 'host', '--policy', 'permissive', '--shell', 'sleep 2; ls'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.stdout, '');
  assert.equal(r.json.changes.commit, null, JSON.stringify(r.json.changes));
});
