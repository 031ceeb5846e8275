// Shared test helpers: temporary Corral homes, an in-process Corral, and the real CLI as a process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { after } from 'node:test';
import { Corral } from '../src/services/corral.ts';
import type { Caller } from '../src/store/corral-store.ts';

export const ROOT = resolve(import.meta.dirname, '..');
export const CLI = join(ROOT, 'bin', 'corral');

/** A fresh directory removed when the test file ends. Put on /dev/shm when there (fast, see ARCHITECTURE §5). */
export function tempDir(prefix = 'corral-test-'): string {
  const base = process.env.CORRAL_TEST_TMP ?? (process.platform === 'linux' ? '/dev/shm' : tmpdir());
  const dir = mkdtempSync(join(base, prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const testCaller: Caller = { actor: 'test', origin: 'cli' };

/** An in-process Corral over a fresh home, closed when the test file ends. */
export function openCorral(home = tempDir(), caller: Caller = testCaller): Corral {
  const corral = new Corral({ home, caller });
  after(() => corral.close());
  return corral;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (when --json was passed). */
  json: any;
}

function finish(code: number | null, stdout: Buffer, stderr: Buffer): CliResult {
  const out = stdout.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(out);
  } catch {
    json = undefined;
  }
  return { code: code ?? -1, stdout: out, stderr: stderr.toString('utf8'), json };
}

/** Runs bin/corral synchronously against `home`. */
export function corral(home: string, args: string[], options: { input?: string | Uint8Array; env?: Record<string, string>; cwd?: string } = {}): CliResult {
  const r = spawnSync(CLI, args, {
    input: options.input ?? '',
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '', NO_COLOR: '1', ...options.env },
    maxBuffer: 256 * 1024 * 1024,
  });
  return finish(r.status, r.stdout, r.stderr);
}

/** Runs bin/corral asynchronously (for concurrency tests). */
export function corralAsync(home: string, args: string[], options: { input?: string | Uint8Array; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(CLI, args, { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '', NO_COLOR: '1', ...options.env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise(finish(code, Buffer.concat(out), Buffer.concat(err))));
    child.stdin.end(options.input ?? '');
  });
}
