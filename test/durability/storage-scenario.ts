// Runs inside `unshare --user --map-root-user --mount` (see storage-errors.test.ts): mounts small
// tmpfs filesystems, drives the real CLI into a full disk and a read-only mount, and prints one
// JSON report on stdout for the test to check. It asserts nothing itself.
//
//   storage-scenario.ts WORKDIR
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

const CLI = resolve(import.meta.dirname, '..', '..', 'bin', 'corral');
const work = process.argv[2]!;

interface Run {
  code: number | null;
  stdout: Buffer;
  json: any;
}

function cli(home: string, args: string[], input: Uint8Array | string = ''): Run {
  const r = spawnSync(CLI, args, { input, env: { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '', NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { code: r.status, stdout: r.stdout, json };
}

function sh(cmd: string, args: string[]): { ok: boolean; message: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, message: (r.stderr || r.stdout || String(r.error ?? '')).trim() };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function integrity(home: string): string {
  const db = new DatabaseSync(join(home, 'corral.db'));
  try {
    return (db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check;
  } finally {
    db.close();
  }
}

function rowCounts(home: string): Record<string, number> {
  const db = new DatabaseSync(join(home, 'corral.db'), { readOnly: true });
  try {
    const n = (t: string): number => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { blobs: n('blobs'), trees: n('trees'), commits: n('commits'), audit: n('audit') };
  } finally {
    db.close();
  }
}

function fileNames(home: string): string[] {
  return (cli(home, ['ls', '/', '--json']).json?.entries ?? []).map((e: { name: string }) => e.name);
}

function errorOf(r: Run): { exit: number | null; code: string | undefined; message: string | undefined } {
  return { exit: r.code, code: r.json?.error?.code, message: r.json?.error?.message };
}

const report: Record<string, unknown> = {};

function fullDisk(): void {
  const mnt = join(work, 'full');
  mkdirSync(mnt, { recursive: true });
  const m = sh('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  if (!m.ok) {
    report.mountFailed = m.message;
    return;
  }
  const home = join(mnt, 'home');
  cli(home, ['vault', 'create', 'v', '--use']);
  const good = new TextEncoder().encode('the last good file\n');
  cli(home, ['write', '/good.txt'], good);
  const written: Record<string, string> = { 'good.txt': sha(good) };
  let failure: Run | undefined;
  let headBefore = '';
  let rowsBefore: Record<string, number> = {};
  let failedName = '';
  for (let i = 0; i < 40 && !failure; i++) {
    headBefore = cli(home, ['vault', 'info', '--json']).json.head;
    rowsBefore = rowCounts(home);
    const data = randomBytes(256 * 1024);
    const name = `big${i}.bin`;
    const r = cli(home, ['write', `/${name}`, '--json'], data);
    if (r.code === 0) written[name] = sha(data);
    else {
      failure = r;
      failedName = name;
    }
  }
  const intact: Record<string, boolean> = {};
  for (const [name, hash] of Object.entries(written)) intact[name] = sha(cli(home, ['cat', `/${name}`]).stdout) === hash;
  const verify = cli(home, ['audit', 'verify', '--json']);
  report.full = {
    writtenBeforeFull: Object.keys(written).length - 1,
    failure: failure && errorOf(failure),
    failedName,
    headBefore,
    headAfter: cli(home, ['vault', 'info', '--json']).json.head,
    rowsBefore,
    rowsAfter: rowCounts(home),
    files: fileNames(home),
    intact,
    integrity: integrity(home),
    auditVerify: { exit: verify.code, ok: verify.json?.ok },
  };

  // The same filesystem, now read-only: reads work, every kind of write is refused.
  const ro = sh('mount', ['-o', 'remount,ro', mnt]);
  if (!ro.ok) {
    report.remountFailed = ro.message;
    return;
  }
  report.readOnly = {
    cat: cli(home, ['cat', '/good.txt']).stdout.toString('utf8'),
    files: fileNames(home),
    stats: cli(home, ['stats', '--json']).json?.files,
    write: errorOf(cli(home, ['write', '/ro.txt', 'nope', '--json'])),
    mkdir: errorOf(cli(home, ['mkdir', '/dir', '--json'])),
    checkpoint: errorOf(cli(home, ['checkpoint', 'save', 'ro', '--json'])),
    vaultCreate: errorOf(cli(home, ['vault', 'create', 'other', '--json'])),
    gc: errorOf(cli(home, ['gc', '--grace', '0', '--json'])),
  };

  // Room again: Corral carries on where it stopped.
  const grow = sh('mount', ['-o', 'remount,rw,size=16m', mnt]);
  if (!grow.ok) {
    report.growFailed = grow.message;
    return;
  }
  const after = cli(home, ['write', '/after.txt', 'written after the disk had room again', '--json']);
  const verifyAfter = cli(home, ['audit', 'verify', '--json']);
  report.recovered = {
    write: after.code,
    cat: cli(home, ['cat', '/after.txt']).stdout.toString('utf8'),
    good: sha(cli(home, ['cat', '/good.txt']).stdout) === written['good.txt'],
    integrity: integrity(home),
    auditVerify: { exit: verifyAfter.code, ok: verifyAfter.json?.ok },
  };
}

/** A home closed cleanly (no -wal or -shm file left), then mounted read-only. */
function readOnlyClean(): void {
  const mnt = join(work, 'clean');
  mkdirSync(mnt, { recursive: true });
  const m = sh('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  if (!m.ok) {
    report.mountFailed = m.message;
    return;
  }
  const home = join(mnt, 'home');
  cli(home, ['vault', 'create', 'v', '--use']);
  cli(home, ['write', '/kept.txt', 'kept while read-only']);
  const ro = sh('mount', ['-o', 'remount,ro', mnt]);
  if (!ro.ok) {
    report.remountFailed = ro.message;
    return;
  }
  const verify = cli(home, ['audit', 'verify', '--json']);
  report.readOnlyClean = {
    cat: cli(home, ['cat', '/kept.txt']).stdout.toString('utf8'),
    log: cli(home, ['log', '--json']).json?.commits?.length,
    auditVerify: { exit: verify.code, ok: verify.json?.ok },
    write: errorOf(cli(home, ['write', '/ro.txt', 'nope', '--json'])),
    use: errorOf(cli(home, ['vault', 'use', 'v', '--json'])),
  };
}

fullDisk();
readOnlyClean();
process.stdout.write(JSON.stringify(report) + '\n');
