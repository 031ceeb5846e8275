// The background daemon as a process: its pid file, its log, and starting, finding and stopping it.
//
// The daemon writes its own pid file (so a foreground daemon can be found and stopped too): pid,
// /proc start time and boot id, so a recycled pid is never taken for the daemon. The file is
// created exclusively (a temp file opened O_EXCL, then hard-linked into place: the link fails if
// the name exists), so a reader never sees a half-written one; a stale one (its process gone) is
// replaced. No zod, hono or pino here: `corral daemon stop|status|logs` stay quick to start.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorralError } from '../protocol/errors.ts';
import { procStat } from '../runtime/process-identity.ts';

/** The files of a Corral home the background daemon uses. */
export interface DaemonPaths {
  pidFile: string;
  logFile: string;
  socket: string;
}

/** The files in `home`, or where CORRAL_DAEMON_PID_FILE, _LOG_FILE and _SOCKET put them (as daemon-config.ts reads them). */
export function daemonPaths(home: string, env: Record<string, string | undefined> = {}): DaemonPaths {
  const at = (name: string, fallback: string) => (env[name] ? resolve(env[name]) : resolve(home, fallback));
  return { pidFile: at('CORRAL_DAEMON_PID_FILE', 'daemon.pid'), logFile: at('CORRAL_DAEMON_LOG_FILE', 'daemon.log'), socket: at('CORRAL_DAEMON_SOCKET', 'corral.sock') };
}

// ---- process identity ----------------------------------------------------------------------

/** A process told apart from a later one reusing its pid: its start time (clock ticks since boot) and the boot. */
export interface ProcessIdentity {
  pid: number;
  /** /proc/<pid>/stat starttime; '' where there is no /proc. */
  started: string;
  /** /proc/sys/kernel/random/boot_id; '' where there is none. */
  boot: string;
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1').trim();
  } catch {
    return undefined;
  }
}

function threads(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return 0;
  }
}

/** The running process with this pid (a zombie counts as gone), or undefined. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  if (!existsSync('/proc/self/stat')) {
    // No /proc (not Linux): only whether the pid exists can be known.
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
    }
    return { pid, started: '', boot: '' };
  }
  const st = procStat(pid);
  // A zombie is gone once its other threads are: until then they may still hold its files (the socket).
  if (!st || st.state === 'X' || (st.state === 'Z' && threads(pid) <= 1)) return undefined;
  return { pid, started: st.started, boot: readTrimmed('/proc/sys/kernel/random/boot_id') ?? '' };
}

/** Whether the very process `id` names still runs (not merely some process with its pid). */
export function isAlive(id: ProcessIdentity): boolean {
  const now = processIdentity(id.pid);
  return now !== undefined && now.started === id.started && now.boot === id.boot;
}

// ---- the pid file --------------------------------------------------------------------------

/** What the daemon's pid file holds. */
export interface PidRecord extends ProcessIdentity {
  /** starting: the pid file is claimed, the listeners are not up yet; listening: it serves. */
  state: 'starting' | 'listening';
  socket: string;
  tcp: { host: string; port: number; tls: boolean } | null;
  version: string;
  /** When the daemon started, ms since the epoch. */
  startedAt: number;
}

export type PidFileState =
  | { kind: 'absent' }
  /** The process it names runs. */
  | { kind: 'live'; record: PidRecord }
  /** Its process is gone, or the file is not a pid record (record null). */
  | { kind: 'stale'; record: PidRecord | null };

function parseRecord(text: string): PidRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  const tcp = r.tcp as Record<string, unknown> | null | undefined;
  const tcpOk = tcp === null || (typeof tcp === 'object' && typeof tcp.host === 'string' && Number.isSafeInteger(tcp.port) && typeof tcp.tls === 'boolean');
  if (!Number.isSafeInteger(r.pid) || (r.pid as number) <= 0 || typeof r.started !== 'string' || typeof r.boot !== 'string') return null;
  if ((r.state !== 'starting' && r.state !== 'listening') || typeof r.socket !== 'string' || !tcpOk || typeof r.version !== 'string' || !Number.isFinite(r.startedAt)) return null;
  return {
    pid: r.pid as number,
    started: r.started,
    boot: r.boot,
    state: r.state,
    socket: r.socket,
    tcp: tcp === null ? null : { host: tcp!.host as string, port: tcp!.port as number, tls: tcp!.tls as boolean },
    version: r.version,
    startedAt: r.startedAt as number,
  };
}

interface ReadPidFile {
  state: PidFileState;
  /** The file read (to remove exactly it, not one another process put there since). */
  file?: { dev: number; ino: number };
}

// A pid file is a few hundred bytes: anything much larger is not ours.
const MAX_PID_FILE = 64 * 1024;

function readPidFile(path: string): ReadPidFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: { kind: 'absent' } };
    throw new CorralError('HOST_IO_ERROR', `cannot read the pid file ${path}: ${(e as Error).message}`, { pidFile: path }, e);
  }
  try {
    const st = fstatSync(fd);
    const file = { dev: st.dev, ino: st.ino };
    if (!st.isFile() || st.size > MAX_PID_FILE) return { state: { kind: 'stale', record: null }, file };
    const buf = Buffer.alloc(st.size);
    const n = readSync(fd, buf, 0, st.size, 0);
    const record = parseRecord(buf.subarray(0, n).toString('utf8'));
    if (record && isAlive(record)) return { state: { kind: 'live', record }, file };
    return { state: { kind: 'stale', record }, file };
  } finally {
    closeSync(fd);
  }
}

/** The pid file's state: absent, naming a live daemon, or stale. Changes nothing. */
export function inspectPidFile(path: string): PidFileState {
  return readPidFile(path).state;
}

/** Removes `path` only when it is still the file read earlier. */
function unlinkIfSame(path: string, file: { dev: number; ino: number } | undefined): boolean {
  if (!file) return false;
  try {
    const st = lstatSync(path);
    if (st.dev !== file.dev || st.ino !== file.ino) return false;
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

function tempBeside(path: string): string {
  return `${path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
}

function recordText(record: PidRecord): string {
  return JSON.stringify(record) + '\n';
}

/**
 * Creates the pid file for `record` (this process), exclusively: a live daemon's file is
 * DAEMON_ALREADY_RUNNING, a stale one is replaced.
 */
export function claimPidFile(path: string, record: PidRecord): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = tempBeside(path);
    try {
      writeFileSync(tmp, recordText(record), { mode: 0o600, flag: 'wx' });
      linkSync(tmp, path);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CorralError('HOST_IO_ERROR', `cannot write the pid file ${path}: ${(e as Error).message}`, { pidFile: path }, e);
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // Never created.
      }
    }
    const found = readPidFile(path);
    if (found.state.kind === 'live') {
      const r = found.state.record;
      throw new CorralError('DAEMON_ALREADY_RUNNING', `a daemon already runs (pid ${r.pid}, socket ${r.socket}): stop it first with 'corral daemon stop', or use another $CORRAL_HOME`, { pid: r.pid, socket: r.socket, pidFile: path });
    }
    unlinkIfSame(path, found.file);
  }
  throw new CorralError('CONFLICT', `the pid file ${path} keeps changing: is another daemon starting? Retry`, { pidFile: path });
}

/** Rewrites this process's own pid file (e.g. once listening); refuses to touch another process's. */
export function updatePidFile(path: string, record: PidRecord): void {
  const found = readPidFile(path).state;
  if (found.kind === 'absent' || found.record?.pid !== record.pid || found.record.started !== record.started)
    throw new CorralError('CONFLICT', `the pid file ${path} no longer names this daemon (pid ${record.pid}): was it removed by hand?`, { pidFile: path });
  const tmp = tempBeside(path);
  try {
    writeFileSync(tmp, recordText(record), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Renamed, or never created.
    }
    throw new CorralError('HOST_IO_ERROR', `cannot update the pid file ${path}: ${(e as Error).message}`, { pidFile: path }, e);
  }
}

/** Removes the pid file if it names process `id`; another daemon's file stays. Returns whether it did. */
export function releasePidFile(path: string, id: Pick<ProcessIdentity, 'pid' | 'started'>): boolean {
  const found = readPidFile(path);
  const r = found.state.kind === 'absent' ? null : found.state.record;
  if (!r || r.pid !== id.pid || r.started !== id.started) return false;
  return unlinkIfSame(path, found.file);
}

/** Removes a stale pid file (its process gone, or not a pid record); returns whether there was one. */
export function removeStalePidFile(path: string): boolean {
  const found = readPidFile(path);
  return found.state.kind === 'stale' && unlinkIfSame(path, found.file);
}

// ---- the log -------------------------------------------------------------------------------

export const LOG_ROTATE_BYTES = 10 * 1024 * 1024;

/** Moves the log to `<log>.1` (replacing the previous one) when it is over `maxBytes`; returns whether it did. */
export function rotateLog(path: string, maxBytes = LOG_ROTATE_BYTES): boolean {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  renameSync(path, `${path}.1`);
  return true;
}

/**
 * The last `n` lines of a file (without their newlines) written after byte `from` (default: the
 * whole file), reading backwards from the end; [] when it does not exist.
 */
export function tailLines(path: string, n: number, from = 0): string[] {
  if (n <= 0) return [];
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const chunks: Buffer[] = [];
    let pos = size;
    let newlines = 0;
    const chunkSize = 64 * 1024;
    // n lines need n + 1 newlines once the file's final newline is counted.
    while (pos > from && newlines <= n) {
      const len = Math.min(chunkSize, pos - from);
      pos -= len;
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, pos);
      chunks.unshift(buf);
      for (const b of buf) if (b === 0x0a) newlines++;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    // The first line may be cut in the middle when reading stopped at a chunk boundary.
    if (pos > from) lines.shift();
    return lines.slice(-n);
  } finally {
    closeSync(fd);
  }
}

// ---- talking to the daemon -----------------------------------------------------------------

/** GETs `path` over the Unix socket and parses the JSON answer; rejects on any failure or after `timeoutMs`. */
export function getJson(socketPath: string, path: string, timeoutMs = 2000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (b: Buffer) => {
        size += b.length;
        if (size > 1024 * 1024) req.destroy(new Error('the answer is too large'));
        else chunks.push(b);
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch (e) {
          reject(e);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The daemon's ping answer over the socket, or undefined when nothing answers (or not like a Corral daemon). */
export async function ping(socketPath: string, timeoutMs = 2000): Promise<{ version: string } | undefined> {
  try {
    const r = await getJson(socketPath, '/v1/ping', timeoutMs);
    const body = r.body as { ok?: unknown; version?: unknown };
    return r.status === 200 && body.ok === true && typeof body.version === 'string' ? { version: body.version } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether something accepts connections on the socket at `path`. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (answered: boolean) => {
      s.destroy();
      resolve(answered);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

// ---- start, status, stop -------------------------------------------------------------------

export interface SpawnDaemonOptions {
  /** The program and arguments of the foreground daemon (`node … main.ts daemon run …`). */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  pidFile: string;
  logFile: string;
  /** How long to wait for the daemon to answer GET /v1/ping (default 30 s). */
  timeoutMs?: number;
  /** Lines of the log shown when it fails to start (default 20). */
  logLines?: number;
}

function startFailed(message: string, log: { file: string; offset: number; lines: number }, details: Record<string, unknown>): CorralError {
  // What this run logged (a long line is cut: it is shown in an error message).
  const lines = tailLines(log.file, log.lines, log.offset).map((l) => l.slice(0, 4000));
  const where = lines.length ? `see what it logged in ${log.file} (corral daemon logs)` : `it logged nothing to ${log.file}`;
  return new CorralError('DAEMON_START_FAILED', `${message}: ${where}`, { ...details, logFile: log.file, log: lines });
}

/**
 * Starts the daemon in the background: its own session (setsid), stdout discarded, stderr (its
 * JSON log) appended to `logFile` (rotated first when over 10 MiB). Resolves with its pid record
 * once its pid file says it listens and the socket answers GET /v1/ping; if it exits first or does
 * not answer in time (then it is killed), rejects with DAEMON_START_FAILED, the lines it logged in `details.log`.
 */
export async function spawnDaemon(options: SpawnDaemonOptions): Promise<PidRecord> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const lines = options.logLines ?? 20;
  mkdirSync(dirname(options.logFile), { recursive: true, mode: 0o700 });
  rotateLog(options.logFile);
  const fd = openSync(options.logFile, 'a', 0o600);
  const log = { file: options.logFile, offset: fstatSync(fd).size, lines };
  let child;
  try {
    child = spawn(options.command, options.args, { detached: true, stdio: ['ignore', 'ignore', fd], ...(options.env ? { env: options.env } : {}), ...(options.cwd ? { cwd: options.cwd } : {}) });
  } finally {
    closeSync(fd);
  }
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let failed: Error | undefined;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  child.on('error', (e) => (failed = e));
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (failed) throw new CorralError('DAEMON_START_FAILED', `cannot start the daemon: ${failed.message}`, { command: options.command }, failed);
      if (exited) {
        const how = exited.signal ? `was killed by ${exited.signal}` : `exited with code ${exited.code}`;
        throw startFailed(`the daemon ${how} before it answered`, log, { exitCode: exited.code, signal: exited.signal });
      }
      const st = inspectPidFile(options.pidFile);
      if (st.kind === 'live' && st.record.pid === child.pid && st.record.state === 'listening' && (await ping(st.record.socket, 1000))) return st.record;
      if (Date.now() >= deadline) {
        child.kill('SIGKILL');
        throw startFailed(`the daemon did not answer within ${timeoutMs} ms, so it was killed`, log, { timeoutMs, pid: child.pid });
      }
      await sleep(25);
    }
  } finally {
    // Started or not, this process does not wait for it.
    child.removeAllListeners();
    child.unref();
  }
}

export interface DaemonStatus {
  running: boolean;
  pid: number | null;
  socket: string;
  tcp: PidRecord['tcp'];
  version: string | null;
  /** Seconds since the daemon started (from GET /v1/system). */
  uptimeSeconds: number | null;
  startedAt: string | null;
  /** Whether it answered GET /v1/ping on the socket. */
  answering: boolean;
  pidFile: string;
  logFile: string;
}

/**
 * Whether a daemon runs, from the pid file and the socket: a live pid file, or a daemon answering
 * on the socket without one. Its version and uptime come from GET /v1/ping and /v1/system.
 */
export async function daemonStatus(paths: DaemonPaths, timeoutMs = 2000): Promise<DaemonStatus> {
  const st = inspectPidFile(paths.pidFile);
  const record = st.kind === 'live' ? st.record : null;
  const socket = record?.socket ?? paths.socket;
  const answer = await ping(socket, timeoutMs);
  let daemon: { pid?: unknown; uptimeSeconds?: unknown } | undefined;
  if (answer) {
    try {
      daemon = ((await getJson(socket, '/v1/system', timeoutMs)).body as { daemon?: typeof daemon }).daemon;
    } catch {
      daemon = undefined;
    }
  }
  const uptime = typeof daemon?.uptimeSeconds === 'number' ? daemon.uptimeSeconds : record ? Math.max(0, (Date.now() - record.startedAt) / 1000) : null;
  return {
    running: record !== null || answer !== undefined,
    pid: record?.pid ?? (typeof daemon?.pid === 'number' ? daemon.pid : null),
    socket,
    tcp: record?.tcp ?? null,
    version: answer?.version ?? record?.version ?? null,
    uptimeSeconds: uptime === null ? null : Math.round(uptime * 1000) / 1000,
    startedAt: record ? new Date(record.startedAt).toISOString() : null,
    answering: answer !== undefined,
    pidFile: paths.pidFile,
    logFile: paths.logFile,
  };
}

export interface StopOptions {
  /** How long SIGTERM may take (the daemon drains) before SIGKILL (default 30 s). */
  timeoutMs?: number;
  /** Called just before SIGKILL is sent. */
  onKill?: (pid: number) => void;
}

export interface StopResult {
  /** Always false once stop returns: nothing runs any more. */
  running: false;
  /** Whether a running daemon was stopped (false: none ran). */
  stopped: boolean;
  pid: number | null;
  /** Whether it had to be killed with SIGKILL after the timeout. */
  forced: boolean;
  /** Whether a stale pid file (a dead daemon's) was removed. */
  staleRemoved: boolean;
}

function signal(id: ProcessIdentity, sig: NodeJS.Signals): void {
  // Checked again right before the signal: the pid must still be the daemon's.
  if (!isAlive(id)) return;
  try {
    process.kill(id.pid, sig);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return;
    if (code === 'EPERM') throw new CorralError('PERMISSION_DENIED', `not allowed to signal the daemon (pid ${id.pid}): run as the user who started it`, { pid: id.pid });
    throw e;
  }
}

async function waitGone(id: ProcessIdentity, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(100, wait * 2)) {
    if (!isAlive(id)) return true;
    if (Date.now() >= end) return false;
    await sleep(Math.min(wait, Math.max(1, end - Date.now())));
  }
}

/**
 * Stops the daemon the pid file names: SIGTERM, wait (it drains) up to `timeoutMs`, then SIGKILL.
 * Removes its pid file (and, after a SIGKILL, its socket file when nothing answers there).
 * Nothing running is not an error: `stopped` is false, and a stale pid file is removed.
 */
export async function stopDaemon(paths: Pick<DaemonPaths, 'pidFile'>, options: StopOptions = {}): Promise<StopResult> {
  const st = inspectPidFile(paths.pidFile);
  if (st.kind !== 'live') {
    const staleRemoved = st.kind === 'stale' && removeStalePidFile(paths.pidFile);
    return { running: false, stopped: false, pid: null, forced: false, staleRemoved };
  }
  const r = st.record;
  signal(r, 'SIGTERM');
  let forced = false;
  if (!(await waitGone(r, options.timeoutMs ?? 30_000))) {
    forced = true;
    options.onKill?.(r.pid);
    signal(r, 'SIGKILL');
    if (!(await waitGone(r, 10_000))) throw new CorralError('HOST_IO_ERROR', `the daemon (pid ${r.pid}) is still there 10 s after SIGKILL: check it with ps`, { pid: r.pid });
    // A killed daemon leaves its socket file: remove it unless something answers there.
    try {
      if (lstatSync(r.socket).isSocket() && !(await socketAnswers(r.socket))) unlinkSync(r.socket);
    } catch {
      // Already gone.
    }
  }
  releasePidFile(paths.pidFile, r);
  return { running: false, stopped: true, pid: r.pid, forced, staleRemoved: false };
}
