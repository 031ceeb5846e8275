// A worker process for the durability tests, using the in-process Corral (fast to start).
// It prints one line on stdout for each operation that completed (after its transaction
// committed), so a parent that kills it knows what must have survived.
//
//   writer.ts crash HOME             random writes, mkdirs, rms, mvs, checkpoints, forks, gc and
//                                    compact on vault 'main', forever (until killed)
//   writer.ts files HOME VAULT ID N START
//                                    waits until START (ms since the epoch), then writes N distinct
//                                    files /wID/fI.txt to VAULT
//   writer.ts gc HOME                runs gc with no grace period in a loop, forever
//
// Lines: `ready`, `commit VAULT ID`, `checkpoint NAME COMMIT`, `fork NAME`, `deleted NAME`,
// `gc REMOVED_COMMITS`, `compact`. A failure prints `error CODE MESSAGE` on stderr and exits 1.
import { randomBytes } from 'node:crypto';
import { Corral } from '../../src/services/corral.ts';
import { toCorralError } from '../../src/protocol/errors.ts';
import type { Commit } from '../../src/store/corral-store.ts';

const [mode, home, ...rest] = process.argv.slice(2);
if (!mode || !home) {
  process.stderr.write('usage: writer.ts crash|files|gc HOME ...\n');
  process.exit(2);
}

const corral = new Corral({ home, caller: { actor: `worker:${process.pid}`, origin: 'cli' } });

/** Pipes are written synchronously on Linux: once this returns, the parent can read the line. */
function say(line: string): void {
  process.stdout.write(line + '\n');
}

function reportCommit(vault: string, commit: Commit | null): void {
  if (commit) say(`commit ${vault} ${commit.id}`);
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const chance = (p: number): boolean => Math.random() < p;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function content(): Uint8Array {
  // Mostly small files; now and then a large one, so a kill often lands inside a transaction.
  if (chance(0.25)) return randomBytes(64 * 1024 + Math.floor(Math.random() * 448 * 1024));
  return new TextEncoder().encode(`${process.pid} ${Date.now()} ${Math.random()}\n`.repeat(1 + Math.floor(Math.random() * 20)));
}

function filesIn(vault: string, dir: string): string[] {
  try {
    return corral.files.ls(vault, dir).filter((e) => e.kind === 'file').map((e) => e.path);
  } catch {
    return [];
  }
}

function forks(): string[] {
  return corral.store.listVaults().map((v) => v.name).filter((n) => n.startsWith('fork-'));
}

function crashStep(n: number): void {
  const r = Math.random();
  const existing = filesIn('main', '/f');
  if (r < 0.4 || existing.length === 0) {
    reportCommit('main', corral.files.write('main', `/f/${Math.floor(Math.random() * 40)}.txt`, content()).commit);
  } else if (r < 0.5) {
    reportCommit('main', corral.files.mkdir('main', `/d${Math.floor(Math.random() * 8)}/s${Math.floor(Math.random() * 8)}`, { parents: true }).commit);
  } else if (r < 0.62) {
    reportCommit('main', corral.files.rm('main', pick(existing)).commit);
  } else if (r < 0.74) {
    reportCommit('main', corral.files.mv('main', pick(existing), `/f/m-${process.pid}-${n}.txt`).commit);
  } else if (r < 0.82) {
    const cp = corral.checkpoints.save('main', `cp-${process.pid}-${n}`);
    say(`checkpoint ${cp.name} ${cp.commit}`);
  } else if (r < 0.86) {
    const name = `fork-${process.pid}-${n}`;
    corral.vaults.fork('main', name);
    say(`fork ${name}`);
  } else if (r < 0.92) {
    const f = forks();
    if (f.length > 0) {
      const v = pick(f);
      reportCommit(v, corral.files.write(v, `/fork-${n}.bin`, content()).commit);
    }
  } else if (r < 0.95) {
    const f = forks();
    if (f.length > 0) {
      const v = pick(f);
      corral.vaults.delete(v, true);
      say(`deleted ${v}`);
    }
  } else if (r < 0.985) {
    say(`gc ${corral.maintenance.gc({ graceSeconds: 0 }).removed.commits}`);
  } else {
    corral.maintenance.compact();
    say('compact');
  }
}

async function main(): Promise<void> {
  if (mode === 'crash') {
    if (!corral.store.findVault('main')) corral.vaults.create('main');
    say('ready');
    for (let n = 0; ; n++) {
      crashStep(n);
      // Let the event loop breathe now and then (a kill lands anywhere either way).
      if (n % 20 === 0) await sleep(0);
    }
  } else if (mode === 'files') {
    const [vault, id, count, start] = rest;
    say('ready');
    await sleep(Math.max(0, Number(start) - Date.now()));
    for (let i = 0; i < Number(count); i++) reportCommit(vault!, corral.files.write(vault!, `/w${id}/f${i}.txt`, new TextEncoder().encode(`worker ${id} file ${i}\n`)).commit);
  } else if (mode === 'gc') {
    say('ready');
    for (;;) {
      say(`gc ${corral.maintenance.gc({ graceSeconds: 0 }).removed.commits}`);
      await sleep(5);
    }
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

try {
  await main();
  corral.close();
} catch (e) {
  const err = toCorralError(e);
  process.stderr.write(`error ${err.code} ${err.message}\n${(e as Error).stack ?? ''}\n`);
  process.exit(1);
}
