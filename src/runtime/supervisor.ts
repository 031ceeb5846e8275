// Runs one command under corral-run (native/corral-run.c), the small supervisor that joins the
// exec's cgroups, mounts the overlay, sets rlimits and keeps every descendant in its tree, and
// turns what it reports into a result: exit status, usage, the overlay's opaque directories.
import { spawn } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, lstatSync, mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CorralError } from '../protocol/errors.ts';
import type { TerminalSize } from '../protocol/terminal-size.ts';
import { OutputCapture } from './output-capture.ts';
import { checkTerminalSize, PipeTerminal, type TerminalControl } from './terminal-control.ts';

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
  /** Between SIGTERM and SIGKILL of the whole tree; capped at MAX_GRACE_MS. */
  graceMs: number;
  /**
   * Spare the supervisor's direct child the SIGTERM (it gets the SIGKILL when the grace ends). For
   * bwrap: it would die on SIGTERM and take its pid namespace down with SIGKILL at once, while the
   * namespace's init ignores a SIGTERM from outside, so only the command inside gets it.
   */
  termSpareChild?: boolean;
  /**
   * A passive supervisor inside the sandbox reports the command's own end on the fd after the
   * extra fds (see innerStatusFd): preferred to what the outer one saw (bwrap's 128+N).
   */
  innerStatus?: boolean;
  /**
   * A pseudo-terminal instead of stdio pipes: the command's stdin, stdout and stderr are the
   * terminal, its output arrives as stdout (stderr carries only the supervisor's own diagnostics).
   * The supervisor that is the command's parent makes it: this one, or with `inside` a passive one
   * inside the sandbox whose arguments already carry `--pty` and `--pty-control-fd` (the fd is
   * terminalControlFd(): Node serves the control pipe there and passes it through as an extra fd).
   */
  terminal?: TerminalSize & { inside?: boolean; onTerminal?: (t: TerminalControl) => void };
  /** Without a terminal: called at start with a hold on the output pipes (pause: the command blocks on its next write). */
  onOutput?: (hold: OutputHold) => void;
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

/** A longer grace would let a command that traps SIGTERM hold an exec (and its sandbox) long after its timeout. */
export const MAX_GRACE_MS = 60_000;
/** How long output already written may take to arrive once the supervisor has exited. */
const DRAIN_MS = 100;

/** The fd of a terminal's control pipe: after the extra fds and the inner status fd. */
export function terminalControlFd(extraFds: number, innerStatus: boolean): number {
  return 4 + extraFds + (innerStatus ? 1 : 0);
}

export function supervisorArgs(spec: SupervisedSpec): string[] {
  const extra = spec.extraFds?.length ?? 0;
  const passed = extra + (spec.innerStatus ? 1 : 0) + (spec.terminal?.inside ? 1 : 0);
  const args: string[] = ['--status-fd', '3', '--grace-ms', String(graceOf(spec)), '--extra-fds', String(passed)];
  if (spec.terminal && !spec.terminal.inside)
    args.push('--pty', `${spec.terminal.cols}x${spec.terminal.rows}`, '--pty-control-fd', String(terminalControlFd(extra, Boolean(spec.innerStatus))));
  if (spec.termSpareChild) args.push('--term-spare-child');
  for (const f of spec.cgroupProcs ?? []) args.push('--cgroup-procs', f);
  if (spec.overlay) args.push('--overlay', spec.overlay.lower, spec.overlay.upper, spec.overlay.work, spec.overlay.merged);
  if (spec.chdir) args.push('--chdir', spec.chdir);
  for (const [name, value] of Object.entries(spec.rlimits ?? {})) if (value !== undefined) args.push('--rlimit', `${name}=${Math.max(0, Math.floor(value))}`);
  args.push('--', ...spec.argv);
  return args;
}

function graceOf(spec: SupervisedSpec): number {
  const g = Math.round(spec.graceMs);
  return Number.isFinite(g) ? Math.min(MAX_GRACE_MS, Math.max(0, g)) : MAX_GRACE_MS;
}

/** Kills what is left of a process group (the command's: the supervisor makes it a session leader). */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** The fd a passive inner supervisor reports on: right after the extra fds (4, 5, …). */
export function innerStatusFd(extraFds: number): number {
  return 4 + extraFds;
}

/** How the command ended, from a passive supervisor's report: only a whole one (one end line, then done). */
function innerEnd(text: string): { exitCode: number | null; signal: string | null } | undefined {
  const lines = text.split('\n');
  const ends = lines.filter((l) => /^(exit|signal) \d+$/.test(l));
  if (ends.length !== 1 || !lines.includes('done') || lines.indexOf('done') < lines.indexOf(ends[0]!)) return undefined;
  const [word, value] = ends[0]!.split(' ');
  return word === 'exit' ? { exitCode: Number(value), signal: null } : { exitCode: null, signal: signalName(Number(value)) };
}

/** Holding an exec's output back: while paused its pipes are not read, so the command blocks on a full pipe. */
export interface OutputHold {
  pause(): void;
  resume(): void;
  readonly paused: boolean;
}

export function runSupervised(spec: SupervisedSpec): Promise<SupervisedResult> {
  const helper = supervisorPath();
  if (!existsSync(helper))
    return Promise.reject(new CorralError('BACKEND_UNAVAILABLE', `the exec supervisor ${helper} is missing: run \`make setup\` (it needs a C compiler: apt-get install gcc)`, { helper }));
  if (spec.terminal) {
    try {
      checkTerminalSize({ cols: spec.terminal.cols, rows: spec.terminal.rows });
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolvePromise, reject) => {
    const startedAt = Date.now();
    const t0 = performance.now();
    const extra = spec.extraFds ?? [];
    const tty = spec.terminal;
    const child = spawn(helper, supervisorArgs(spec), {
      env: spec.env,
      // No input: /dev/null rather than a pipe to close (one socketpair less per exec). A terminal
      // always has an input pipe (its TerminalControl writes to it) and a control pipe.
      stdio: [spec.stdin === undefined && !tty ? 'ignore' : 'pipe', 'pipe', 'pipe', 'pipe', ...extra.map(() => 'pipe' as const), ...(spec.innerStatus ? ['pipe' as const] : []), ...(tty ? ['pipe' as const] : [])],
    });
    let terminal: PipeTerminal | undefined;
    if (tty) {
      const control = child.stdio[terminalControlFd(extra.length, Boolean(spec.innerStatus))] as Writable;
      control.on('error', () => undefined); // the supervisor may be gone
      child.stdin!.on('error', () => undefined);
      terminal = new PipeTerminal({ input: child.stdin!, control, output: child.stdout! }, tty);
    }
    let inner = '';
    if (spec.innerStatus) {
      const pipe = child.stdio[innerStatusFd(extra.length)] as Readable;
      pipe.setEncoding('utf8');
      pipe.on('data', (text: string) => (inner += text));
    }
    const stdout = new OutputCapture(spec.outputCap);
    const stderr = new OutputCapture(spec.outputCap);
    const emit = spec.onEvent ?? (() => undefined);
    let status = '';
    let timedOut = false;
    let cancelled = false;
    let setupError: string | undefined;
    const timers: NodeJS.Timeout[] = [];

    // The output hold (no terminal): released for good when the exec is being ended.
    let held = false;
    let released = false;
    const hold: OutputHold = {
      pause() {
        if (released || held) return;
        held = true;
        child.stdout!.pause();
        child.stderr!.pause();
      },
      resume() {
        if (!held) return;
        held = false;
        child.stdout!.resume();
        child.stderr!.resume();
      },
      get paused() {
        return held;
      },
    };
    const terminate = (): void => {
      // A reader that paused the terminal or the output must not hold up the end: the rest flows.
      terminal?.close();
      released = true;
      hold.resume();
      child.kill('SIGTERM');
      // Backstop: the supervisor kills its tree itself; if it does not end, it is killed too.
      const backstop = setTimeout(() => child.kill('SIGKILL'), graceOf(spec) + 3000);
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

    let received = 0; // bytes of output so far: the drain below waits until it stops growing
    // The pipes are read in no set order: output that arrives before the status pipe's 'started'
    // waits for it, so a listener always sees started, then output, then exit.
    let early: ExecEvent[] | null = [];
    const output = (e: ExecEvent): void => (early ? void early.push(e) : emit(e));
    const flushEarly = (): void => {
      const queued = early ?? [];
      early = null;
      for (const e of queued) emit(e);
    };
    child.stdout!.on('data', (b: Buffer) => {
      received += b.length;
      stdout.push(b);
      output({ type: 'stdout', data: b });
    });
    child.stderr!.on('data', (b: Buffer) => {
      received += b.length;
      stderr.push(b);
      output({ type: 'stderr', data: b });
    });
    const statusPipe = child.stdio[3] as Readable;
    statusPipe.setEncoding('utf8');
    let commandPid = 0;
    statusPipe.on('data', (text: string) => {
      received += text.length;
      status += text;
      if (commandPid) return;
      const started = /^started (\d+)$/m.exec(status);
      if (!started) return;
      commandPid = Number(started[1]);
      if (terminal && tty?.onTerminal && !terminal.closed) tty.onTerminal(terminal);
      if (!terminal) spec.onOutput?.(hold);
      emit({ type: 'started', pid: commandPid, supervisorPid: child.pid! });
      flushEarly();
    });
    extra.forEach((data, i) => {
      const pipe = child.stdio[4 + i] as NodeJS.WritableStream & { on: (e: string, f: () => void) => void };
      pipe.on('error', () => undefined);
      pipe.end(data);
    });
    const input = spec.stdin;
    // With a terminal, given input is typed first; its end is the terminal's EOF (^D).
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
    // 'close' waits for every pipe to close, and a process that left the supervisor's tree (the
    // supervisor was killed: the host backend cannot stop that) may hold them open for ever. Once
    // the supervisor has exited, the pipes are closed once quiet for DRAIN_MS; the close runs in a
    // setImmediate, after the poll phase has read what is pending, so a busy loop loses no output.
    child.on('exit', () => {
      let seen = -1;
      const check = (): void => {
        const now = received;
        // A paused terminal holds its output back on purpose (the supervisor waits for the reader).
        if (now !== seen || terminal?.paused || held) {
          seen = now;
          const t = setTimeout(check, DRAIN_MS);
          t.unref();
          timers.push(t);
          return;
        }
        setImmediate(() => {
          if (received !== seen) return check();
          for (const s of child.stdio) s?.destroy();
        });
      };
      check();
    });
    child.on('close', (code, sig) => {
      for (const t of timers) clearTimeout(t);
      terminal?.close();
      flushEarly();
      spec.signal?.removeEventListener('abort', onAbort);
      const lines = status.split('\n');
      let exitCode: number | null = null;
      let signal: string | null = null;
      const usage = { cpuUserMs: 0, cpuSystemMs: 0, maxRssBytes: 0, readBytes: 0, writtenBytes: 0 };
      const opaque: string[] = [];
      let started = false;
      let done = false;
      for (const line of lines) {
        const [word, ...rest] = line.split(' ');
        if (word === 'started') started = true;
        else if (word === 'done') done = true;
        else if (word === 'exit') exitCode = Number(rest[0]);
        else if (word === 'signal') signal = signalName(Number(rest[0]));
        else if (word === 'error') setupError = rest.join(' ');
        else if (word === 'opaque') opaque.push(Buffer.from(rest[0] ?? '', 'hex').toString('utf8'));
        else if (word === 'rusage') {
          const [ut, st, rss, inb, outb] = rest.map(Number);
          Object.assign(usage, { cpuUserMs: (ut ?? 0) / 1000, cpuSystemMs: (st ?? 0) / 1000, maxRssBytes: (rss ?? 0) * 1024, readBytes: (inb ?? 0) * 512, writtenBytes: (outb ?? 0) * 512 });
        }
      }
      if (!started) {
        const why = setupError ?? (sig ? `the supervisor was killed by ${sig}` : `the supervisor exited with ${code}: ${stderr.bytes().toString('utf8').trim()}`);
        reject(new CorralError('EXEC_FAILED', `could not set up the sandbox: ${why}`, { stage: 'executing' }));
        return;
      }
      // Only a report that ends in `done` is whole: without it the supervisor died (killed, or
      // crashed walking the upper directory) and neither the tree's end nor the opaque list holds.
      if (!done || setupError) {
        if (commandPid) killGroup(commandPid);
        const details = { stage: 'executing', exitCode: code, signal: sig, reported: exitCode ?? signal };
        if (setupError) reject(new CorralError('EXEC_FAILED', `the exec's supervisor failed after the command ended: ${setupError}; the run's result is incomplete, run it again`, details));
        else if (sig) reject(new CorralError('EXEC_FAILED', `the exec's supervisor was killed (${sig}): processes of the command may have escaped (the host backend does not isolate); check for leftover processes and run it again`, details));
        else reject(new CorralError('EXEC_FAILED', `the exec's supervisor ended (exit ${code}) without reporting the end of the command: processes of the command may have escaped; check for leftover processes and run it again`, details));
        return;
      }
      // The passive supervisor inside the sandbox saw how the command itself ended.
      const own = innerEnd(inner);
      if (own) ({ exitCode, signal } = own);
      // Without it, bwrap (the spared child) reports a command killed by signal N as exit 128+N: after
      // a timeout or a cancel, that is the termination's signal, reported as such like on the host backend.
      else if (spec.termSpareChild && (timedOut || cancelled) && exitCode !== null && exitCode > 128 && exitCode <= 128 + 64) {
        signal = signalName(exitCode - 128);
        exitCode = null;
      }
      const durationMs = performance.now() - t0;
      emit({ type: 'exit', exitCode, signal, timedOut });
      resolvePromise({ exitCode, signal, timedOut, cancelled, stdout, stderr, startedAt, durationMs, usage, opaque });
    });
  });
}

/**
 * The root of per-exec scratch directories, created and checked: /dev/shm/corral-<uid> when /dev/shm
 * is there (ARCHITECTURE §5: ext4 is slow after mass deletes). $CORRAL_SCRATCH, the caller's own
 * choice, is created if missing and used as it is.
 */
export function scratchRoot(): string {
  const chosen = process.env.CORRAL_SCRATCH;
  if (chosen) {
    mkdirSync(chosen, { recursive: true, mode: 0o700 });
    return chosen;
  }
  const uid = process.getuid?.() ?? 0;
  return ensurePrivateDir(join(existsSync('/dev/shm') ? '/dev/shm' : (process.env.TMPDIR ?? '/tmp'), `corral-${uid}`));
}

/**
 * Creates `dir` (mode 0700) or checks the one there. Its name is predictable and its parent is
 * world-writable, so anyone may have made it first: it must be a real directory (not a symlink)
 * owned by this user; group and other write bits are removed. Anything else is EXEC_FAILED.
 */
export function ensurePrivateDir(dir: string): string {
  let st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    st = lstatSync(dir);
  }
  const uid = process.getuid?.();
  const problem = st.isSymbolicLink() ? 'is a symbolic link' : !st.isDirectory() ? 'is not a directory' : uid !== undefined && st.uid !== uid ? `belongs to uid ${st.uid}, not to you (uid ${uid})` : undefined;
  if (problem)
    throw new CorralError('EXEC_FAILED', `the scratch directory ${dir} ${problem}: someone else may control it; remove it, or set CORRAL_SCRATCH to a private directory of yours`, { path: dir });
  if (st.mode & 0o022) chmodSync(dir, 0o700);
  return dir;
}
