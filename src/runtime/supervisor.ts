// Runs one command under corral-run (native/corral-run.c), the small supervisor that joins the
// exec's cgroups, mounts the overlay, sets rlimits and keeps every descendant in its tree, and
// turns what it reports into a result: exit status, usage, the overlay's opaque directories.
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { CorralError } from '../protocol/errors.ts';
import { OutputCapture } from './output-capture.ts';

export type RlimitName = 'NOFILE' | 'FSIZE' | 'CORE' | 'NPROC' | 'AS' | 'CPU';

export type ExecEvent =
  /** pid: the command's top process (bwrap for the namespace backend); supervisorPid: corral-run's. */
  | { type: 'started'; pid: number; supervisorPid: number }
  | { type: 'stdout'; data: Buffer }
  | { type: 'stderr'; data: Buffer }
  | { type: 'heartbeat'; elapsedMs: number }
  | { type: 'exit'; exitCode: number | null; signal: string | null; timedOut: boolean };

/** Bytes, a host file to read, or a stream. */
export type StdinSource = Uint8Array | { file: string } | Readable;

export interface SupervisedSpec {
  /** What the supervisor execs: the command itself, or bwrap's arguments ending in the command. */
  argv: string[];
  env: Record<string, string>;
  /** The child's working directory on the host (after the overlay is mounted). */
  chdir?: string;
  overlay?: { lower: string; upper: string; work: string; merged: string };
  /** cgroup.procs files the supervisor joins before anything runs. */
  cgroupProcs?: string[];
  rlimits?: Partial<Record<RlimitName, number>>;
  /** Data served on fds 4, 5, … of the command (the seccomp program for bwrap). */
  extraFds?: Buffer[];
  stdin?: StdinSource;
  timeoutMs: number;
  /** Between SIGTERM and SIGKILL of the whole tree. */
  graceMs: number;
  /** Per stream. */
  outputCap: number;
  heartbeatMs?: number;
  onEvent?: (e: ExecEvent) => void;
  signal?: AbortSignal;
}

export interface SupervisedResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  stdout: OutputCapture;
  stderr: OutputCapture;
  startedAt: number;
  durationMs: number;
  usage: { cpuUserMs: number; cpuSystemMs: number; maxRssBytes: number; readBytes: number; writtenBytes: number };
  /** Upper-relative paths of directories the overlay marked opaque (they replaced a deleted one). */
  opaque: string[];
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

export function signalName(n: number): string {
  return signalNames.get(n) ?? `SIG${n}`;
}

/** tools/bin/corral-run of this checkout, or $CORRAL_RUN_HELPER. */
export function supervisorPath(): string {
  return process.env.CORRAL_RUN_HELPER ?? resolve(import.meta.dirname, '..', '..', 'tools', 'bin', 'corral-run');
}

export function supervisorAvailable(): boolean {
  return existsSync(supervisorPath());
}

export function supervisorArgs(spec: SupervisedSpec): string[] {
  const args: string[] = ['--status-fd', '3', '--grace-ms', String(Math.max(0, Math.round(spec.graceMs))), '--extra-fds', String(spec.extraFds?.length ?? 0)];
  for (const f of spec.cgroupProcs ?? []) args.push('--cgroup-procs', f);
  if (spec.overlay) args.push('--overlay', spec.overlay.lower, spec.overlay.upper, spec.overlay.work, spec.overlay.merged);
  if (spec.chdir) args.push('--chdir', spec.chdir);
  for (const [name, value] of Object.entries(spec.rlimits ?? {})) if (value !== undefined) args.push('--rlimit', `${name}=${Math.max(0, Math.floor(value))}`);
  args.push('--', ...spec.argv);
  return args;
}

export function runSupervised(spec: SupervisedSpec): Promise<SupervisedResult> {
  const helper = supervisorPath();
  if (!existsSync(helper))
    return Promise.reject(new CorralError('BACKEND_UNAVAILABLE', `the exec supervisor ${helper} is missing: run \`make setup\` (it needs a C compiler: apt-get install gcc)`, { helper }));
  return new Promise((resolvePromise, reject) => {
    const startedAt = Date.now();
    const t0 = performance.now();
    const extra = spec.extraFds ?? [];
    const child = spawn(helper, supervisorArgs(spec), {
      env: spec.env,
      // No input: /dev/null rather than a pipe to close (one socketpair less per exec).
      stdio: [spec.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', 'pipe', ...extra.map(() => 'pipe' as const)],
    });
    const stdout = new OutputCapture(spec.outputCap);
    const stderr = new OutputCapture(spec.outputCap);
    const emit = spec.onEvent ?? (() => undefined);
    let status = '';
    let timedOut = false;
    let cancelled = false;
    let setupError: string | undefined;
    const timers: NodeJS.Timeout[] = [];

    const terminate = (): void => {
      child.kill('SIGTERM');
      // Backstop: the supervisor kills its tree itself; if it does not end, it is killed too.
      const backstop = setTimeout(() => child.kill('SIGKILL'), spec.graceMs + 3000);
      backstop.unref();
      timers.push(backstop);
    };
    if (spec.timeoutMs > 0 && Number.isFinite(spec.timeoutMs))
      timers.push(setTimeout(() => {
        timedOut = true;
        terminate();
      }, spec.timeoutMs));
    if (spec.heartbeatMs && spec.heartbeatMs > 0)
      timers.push(setInterval(() => emit({ type: 'heartbeat', elapsedMs: Math.round(performance.now() - t0) }), spec.heartbeatMs));
    const onAbort = (): void => {
      cancelled = true;
      terminate();
    };
    if (spec.signal?.aborted) onAbort();
    else spec.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout!.on('data', (b: Buffer) => {
      stdout.push(b);
      emit({ type: 'stdout', data: b });
    });
    child.stderr!.on('data', (b: Buffer) => {
      stderr.push(b);
      emit({ type: 'stderr', data: b });
    });
    const statusPipe = child.stdio[3] as Readable;
    statusPipe.setEncoding('utf8');
    statusPipe.on('data', (text: string) => {
      status += text;
      const started = /^started (\d+)$/m.exec(text);
      if (started) emit({ type: 'started', pid: Number(started[1]), supervisorPid: child.pid! });
    });
    extra.forEach((data, i) => {
      const pipe = child.stdio[4 + i] as NodeJS.WritableStream & { on: (e: string, f: () => void) => void };
      pipe.on('error', () => undefined);
      pipe.end(data);
    });
    const input = spec.stdin;
    if (input !== undefined) {
      const stdinPipe = child.stdin!;
      stdinPipe.on('error', () => undefined); // the command may exit without reading its input
      if (input instanceof Uint8Array) stdinPipe.end(input);
      else if ('file' in input) createReadStream(input.file).on('error', () => stdinPipe.end()).pipe(stdinPipe);
      else input.on('error', () => stdinPipe.end()).pipe(stdinPipe);
    }

    child.on('error', (e) => {
      for (const t of timers) clearTimeout(t);
      reject(new CorralError('EXEC_FAILED', `cannot start the exec supervisor: ${e.message}`, {}, e));
    });
    child.on('close', (code, sig) => {
      for (const t of timers) clearTimeout(t);
      spec.signal?.removeEventListener('abort', onAbort);
      const lines = status.split('\n');
      let exitCode: number | null = null;
      let signal: string | null = null;
      const usage = { cpuUserMs: 0, cpuSystemMs: 0, maxRssBytes: 0, readBytes: 0, writtenBytes: 0 };
      const opaque: string[] = [];
      let started = false;
      for (const line of lines) {
        const [word, ...rest] = line.split(' ');
        if (word === 'started') started = true;
        else if (word === 'exit') exitCode = Number(rest[0]);
        else if (word === 'signal') signal = signalName(Number(rest[0]));
        else if (word === 'error') setupError = rest.join(' ');
        else if (word === 'opaque') opaque.push(Buffer.from(rest[0] ?? '', 'hex').toString('utf8'));
        else if (word === 'rusage') {
          const [ut, st, rss, inb, outb] = rest.map(Number);
          Object.assign(usage, { cpuUserMs: (ut ?? 0) / 1000, cpuSystemMs: (st ?? 0) / 1000, maxRssBytes: (rss ?? 0) * 1024, readBytes: (inb ?? 0) * 512, writtenBytes: (outb ?? 0) * 512 });
        }
      }
      if (setupError || (!started && exitCode === null)) {
        const why = setupError ?? (sig ? `the supervisor was killed by ${sig}` : `the supervisor exited with ${code}: ${stderr.bytes().toString('utf8').trim()}`);
        reject(new CorralError('EXEC_FAILED', `could not set up the sandbox: ${why}`, { stage: 'executing' }));
        return;
      }
      if (exitCode === null && signal === null) signal = sig ?? 'SIGKILL'; // the supervisor itself was killed
      const durationMs = performance.now() - t0;
      emit({ type: 'exit', exitCode, signal, timedOut });
      resolvePromise({ exitCode, signal, timedOut, cancelled, stdout, stderr, startedAt, durationMs, usage, opaque });
    });
  });
}

/** A fresh per-exec scratch directory root: /dev/shm when there (see ARCHITECTURE §5: ext4 is slow after mass deletes). */
export function scratchRoot(): string {
  return process.env.CORRAL_SCRATCH ?? (existsSync('/dev/shm') ? join('/dev/shm', `corral-${process.getuid?.() ?? 0}`) : join(process.env.TMPDIR ?? '/tmp', `corral-${process.getuid?.() ?? 0}`));
}
