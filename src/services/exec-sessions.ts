// Execs in sandboxes as live objects: collected, streamed or in the background, each a row from the
// moment it is asked for (running → completed | pending | denied | failed | lost) with its output kept
// durably (ExecOutputStore), so a client can wait, kill, re-attach from any offset and get the missing
// bytes replayed before the live tail. A daemon that died leaves rows in `running`: recoverLost()
// marks them lost (their output so far stays) and kills whatever of theirs still runs.
import { PassThrough } from 'node:stream';
import { readFileSync } from 'node:fs';
import { newId, isExecId } from '../protocol/ids.ts';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import type { ExecResult } from '../protocol/exec-result.ts';
import { hostIdentity, identityOf, processAlive, type ProcessIdentity } from '../runtime/process-identity.ts';
import { childrenOf } from '../runtime/process-tree.ts';
import type { CorralStore } from '../store/corral-store.ts';
import type { TerminalControl } from '../runtime/terminal-control.ts';
import type { OutputHold } from '../runtime/supervisor.ts';
import { resolveSandboxUser } from '../runtime/sandbox-user.ts';
import type { TerminalSize } from '../protocol/terminal-size.ts';
import type { EventBus } from './event-bus.ts';
import type { ExecRequest, ExecService } from './exec-service.ts';
import { ExecOutputStore, type OutputStream } from './exec-output-store.ts';
import { OWNER, validateEnv, type SandboxExecRequest, type SandboxService, type Scope } from './sandbox-service.ts';

export type ExecState = 'created' | 'running' | 'completed' | 'pending' | 'denied' | 'failed' | 'lost';

/** An exec as the API shows it. */
export interface ExecInfo {
  id: string;
  sandbox: string;
  state: ExecState;
  background: boolean;
  command: { argv: string[] | null; shell: string | null; cwd: string | null };
  pid: number | null;
  exitCode: number | null;
  signal: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  stdoutBytes: number;
  stderrBytes: number;
  /** The corral.exec.result envelope once it ended (null while running, and for a lost exec). */
  result: ExecResult | null;
  /** Why an exec that never ran failed (a start refused). */
  error: { code: string; message: string } | null;
  /** What an attached client gets (Docker's Attach* flags): stdin writable, stdout and stderr sent. */
  attach: { stdin: boolean; stdout: boolean; stderr: boolean };
}

/** What a watcher of an exec receives, in order: output (replayed, then live), heartbeats, the end. */
export type ExecFrame =
  | { type: 'started'; exec: string; pid: number }
  | { type: 'output'; stream: OutputStream; offset: number; atUs: number; data: Buffer }
  /** Bytes from..to of a stream are no longer kept (past the bound): the replay resumes at `to`. */
  | { type: 'gap'; stream: OutputStream; from: number; to: number }
  | { type: 'heartbeat'; elapsedMs: number }
  | { type: 'exit'; exec: ExecInfo };

export interface StartRequest extends SandboxExecRequest {
  background?: boolean;
  /** A real terminal of this size: stdin goes to it (writeStdin types, closeStdin types ^D), resize() resizes it. */
  tty?: TerminalSize;
  /** The user to run as inside the sandbox ("UID", "UID:GID" or a name; namespace backend). */
  user?: string;
  /** Keep stdin open for writeStdin()/closeStdin() (default: stdin is the bytes given, or empty). */
  openStdin?: boolean;
  /** Docker's AttachStdout/AttachStderr: the streams attached clients get (default both; output is kept either way). */
  attachStdout?: boolean;
  attachStderr?: boolean;
  /** The proc_ id of the named process this exec is a run of. */
  processId?: string;
  /** Run the command an approved approval of this sandbox's vault holds (give no argv or shell). */
  resume?: string;
  /** When the policy asks a person to approve the command, wait this long for the answer and run it if approved (default: pending at once). */
  approvalWaitMs?: number;
  /**
   * The exec's output waits for the one reader that owns it (a streamed exec's client, reading
   * frames with `hold`): it is paused while that reader is more than HOLD_HIGH bytes behind, so a
   * slow client slows the command instead of losing bytes (no terminal: a terminal has acks).
   */
  holdForReader?: boolean;
}

export interface ExecSessionsDeps {
  store: CorralStore;
  sandboxes: SandboxService;
  exec: Pick<ExecService, 'run'>;
  events: EventBus;
  output?: ExecOutputStore;
}

interface Live {
  id: string;
  sandbox: string;
  tenant: string | null;
  abort: AbortController;
  stdin: PassThrough | null;
  terminal: TerminalControl | null;
  /** Input for a terminal that is not there yet (typed before the command started), and whether it was ended. */
  early: { input: Uint8Array[]; ended: boolean } | null;
  /** Terminal flow control: bytes of output produced, and the most any attached client acknowledged. */
  flow: { produced: number; acked: number; acking: number };
  /** Output hold (holdForReader): the pipes' hold, all output bytes so far, and how far the owning reader got. */
  held: { hold: OutputHold | null; total: number; reader: number | null } | null;
  pid: number | null;
  supervisorPid: number | null;
  watchers: Set<(f: ExecFrame) => void>;
  done: Promise<ExecInfo>;
}

interface ExecRow {
  id: string;
  sandbox_id: string;
  state: ExecState;
  background: number;
  request: string | null;
  pid: number | null;
  supervisor_pid: number | null;
  supervisor_started: string | null;
  boot_id: string | null;
  result: string | null;
  error: string | null;
  stdout_bytes: number;
  stderr_bytes: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** Input kept for a terminal that is not there yet. */
const EARLY_INPUT_MAX = 1024 * 1024;

/** Terminal output a client may leave unacknowledged before the terminal pauses, and where it resumes. */
export const FLOW_HIGH = 1024 * 1024;
export const FLOW_LOW = 256 * 1024;
/** A held exec's output may run this far ahead of its reader before it pauses, and resumes below HOLD_LOW (within the store's memory ring). */
export const HOLD_HIGH = 3 * 1024 * 1024;
export const HOLD_LOW = 1024 * 1024;

/** The columns of an exec row but its result (NULL in its place). */
const ROW_WITHOUT_RESULT = 'id, sandbox_id, state, background, request, pid, supervisor_pid, supervisor_started, boot_id, NULL AS result, error, stdout_bytes, stderr_bytes, created_at, started_at, finished_at';
/**
 * The output a streamed exec's envelope keeps per stream (head and tail): its client got every byte
 * in the frames, so the exit frame need not carry the collected exec's 10 MiB again.
 */
export const STREAMED_OUTPUT_CAP = 1024 * 1024;

/** The most bytes one read of the store hands a reader. */
const PAGE_BYTES = 256 * 1024;
/** Chunks are merged into one output frame while it is smaller than this, and they came within FRAME_MERGE_US of its first. */
const FRAME_MERGE_BELOW = 64 * 1024;
const FRAME_MERGE_US = 1000;

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, CONT: 18, STOP: 19, TSTP: 20, WINCH: 28 };

/** A signal by name (TERM, SIGTERM) or number (1-64) as its number, or INVALID_ARGUMENT. */
export function parseSignal(signal: string | number): number {
  if (typeof signal === 'number' && Number.isInteger(signal) && signal >= 1 && signal <= 64) return signal;
  if (typeof signal === 'string') {
    const name = signal.toUpperCase().replace(/^SIG/, '');
    if (SIGNALS[name] !== undefined) return SIGNALS[name];
    if (/^[0-9]{1,2}$/.test(signal)) return parseSignal(Number(signal));
  }
  throw new CorralError('INVALID_ARGUMENT', `unknown signal '${String(signal).slice(0, 20)}': use a name (${Object.keys(SIGNALS).join(', ')}) or a number from 1 to 64`, { signal: String(signal).slice(0, 20) });
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The info of a row; `parsed` is its result when the caller has it already (not parsed again). */
function toInfo(r: ExecRow, parsed?: ExecResult | null): ExecInfo {
  const result = parsed !== undefined ? parsed : r.result === null ? null : (JSON.parse(r.result) as ExecResult);
  const req = r.request === null ? {} : (JSON.parse(r.request) as { argv?: string[]; shell?: string; cwd?: string; openStdin?: boolean; attachStdout?: boolean; attachStderr?: boolean });
  return {
    id: r.id,
    sandbox: r.sandbox_id,
    state: r.state,
    background: r.background === 1,
    command: result ? result.command : { argv: req.argv ?? null, shell: req.shell ?? null, cwd: req.cwd ?? null },
    pid: r.pid,
    exitCode: result?.exitCode ?? null,
    signal: result?.signal ?? null,
    createdAt: iso(r.created_at)!,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    stdoutBytes: r.stdout_bytes,
    stderrBytes: r.stderr_bytes,
    result,
    error: r.error === null ? null : (JSON.parse(r.error) as { code: string; message: string }),
    attach: { stdin: req.openStdin === true, stdout: req.attachStdout !== false, stderr: req.attachStderr !== false },
  };
}

/** The output streams an attached client of this exec gets. */
export function attachedStreams(info: ExecInfo): OutputStream[] {
  return (['stdout', 'stderr'] as const).filter((s) => info.attach[s]);
}

/**
 * The command's own process under a supervisor tree: for the namespace backend the started pid is
 * bwrap, whose descendants are bwrap's init and the passive supervisor; the first process below them
 * is the command. On the host backend the started pid is the command already.
 */
export function commandPid(top: number): number {
  let pid = top;
  for (let depth = 0; depth < 4; depth++) {
    let ours: boolean;
    let children: number[];
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
      // The passive supervisor inside bwrap runs as /run/corral/init (its comm is 'init').
      ours = comm === 'bwrap' || comm === 'corral-run' || readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('/run/corral/init\0--passive\0');
      children = childrenOf(pid);
    } catch {
      return pid;
    }
    if (!ours || children.length !== 1) return pid;
    pid = children[0]!;
  }
  return pid;
}

export class ExecSessions {
  private readonly store: CorralStore;
  private readonly sandboxes: SandboxService;
  private readonly runner: Pick<ExecService, 'run'>;
  private readonly events: EventBus;
  readonly output: ExecOutputStore;
  private readonly live = new Map<string, Live>();
  private readonly self: ProcessIdentity;

  constructor(deps: ExecSessionsDeps) {
    this.store = deps.store;
    this.sandboxes = deps.sandboxes;
    this.runner = deps.exec;
    this.events = deps.events;
    this.output = deps.output ?? new ExecOutputStore(deps.store.db);
    this.self = identityOf(process.pid, hostIdentity());
  }

  /** Starts an exec; returns at once with its info (state running, or already ended when it could not start). */
  start(sandboxIdOrName: string, request: StartRequest, scope: Scope = OWNER, createdId?: string): { info: ExecInfo; done: Promise<ExecInfo> } {
    if (typeof request !== 'object' || request === null || Array.isArray(request)) throw new CorralError('INVALID_ARGUMENT', 'the exec request must be an object');
    const sandbox = this.sandboxes.get(sandboxIdOrName, scope);
    if (sandbox.state !== 'ready') throw new CorralError('SANDBOX_STATE', `sandbox ${sandbox.id} is ${sandbox.state}: commands run only in a ready sandbox`, { sandbox: sandbox.id, state: sandbox.state });
    const tenant = this.sandboxes.tenantOf(sandbox.id);
    this.checkExecQuota(tenant);
    this.sandboxes.checkStorageQuota(tenant);
    const env = validateEnv({ ...sandbox.env, ...validateEnv(request.env, 'the exec env') });
    if (request.user !== undefined) resolveSandboxUser(request.user);
    const id = createdId ?? newId('exec', this.store.now());
    const abort = new AbortController();
    if (request.signal) {
      if (request.signal.aborted) abort.abort();
      else request.signal.addEventListener('abort', () => abort.abort(), { once: true });
    }
    const stdin = request.openStdin && !request.tty ? new PassThrough() : null;
    const plain = { argv: request.argv, shell: request.shell, cwd: request.cwd, env: request.env, timeoutMs: request.timeoutMs, tty: request.tty, user: request.user, resume: request.resume, openStdin: request.openStdin, attachStdout: request.attachStdout, attachStderr: request.attachStderr };
    const now = this.store.now();
    if (createdId) this.store.db.run("UPDATE execs SET state = 'running', background = ?, request = ? WHERE id = ? AND state = 'created'", request.background ? 1 : 0, JSON.stringify(plain), id);
    else this.store.db.run('INSERT INTO execs(id, sandbox_id, state, background, process_id, request, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', id, sandbox.id, 'running', request.background ? 1 : 0, request.processId ?? null, JSON.stringify(plain), now);
    this.store.db.run('UPDATE sandboxes SET last_active_at = ? WHERE id = ?', now, sandbox.id);
    const live: Live = { id, sandbox: sandbox.id, tenant, abort, stdin, terminal: null, early: request.tty ? { input: [], ended: false } : null, flow: { produced: 0, acked: 0, acking: 0 }, held: request.holdForReader && !request.tty ? { hold: null, total: 0, reader: null } : null, pid: null, supervisorPid: null, watchers: new Set(), done: undefined as unknown as Promise<ExecInfo> };
    this.live.set(id, live);
    this.events.publish('exec.started', { sandbox: sandbox.id, tenant, data: { exec: id, background: request.background === true } });

    const execRequest: ExecRequest = {
      id,
      vault: sandbox.vault,
      backend: sandbox.backend,
      policy: sandbox.policy,
      limits: sandbox.limits,
      network: sandbox.network === 'host',
      env,
      signal: abort.signal,
      ...(request.argv !== undefined ? { argv: request.argv } : {}),
      ...(request.shell !== undefined ? { shell: request.shell } : {}),
      ...(request.cwd !== undefined ? { cwd: request.cwd } : {}),
      ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
      ...(request.approvalWaitMs !== undefined ? { approvalWaitMs: request.approvalWaitMs } : {}),
      ...(live.held ? { outputCap: STREAMED_OUTPUT_CAP } : {}),
      ...(request.user !== undefined ? { user: request.user } : {}),
      ...(request.resume !== undefined ? { resume: request.resume } : {}),
      ...(stdin ? { stdin } : request.stdin !== undefined ? { stdin: request.stdin } : {}),
      ...(request.tty
        ? {
            tty: request.tty,
            onTerminal: (t: TerminalControl) => {
              live.terminal = t;
              const early = live.early;
              live.early = null;
              for (const b of early?.input ?? []) t.write(b);
              if (early?.ended) t.end();
            },
          }
        : {}),
      ...(live.held ? { onOutput: (h: OutputHold) => void (live.held!.hold = h) } : {}),
      onEvent: (e) => {
        if (e.type === 'started') {
          live.pid = e.pid;
          live.supervisorPid = e.supervisorPid;
          const who = identityOf(e.supervisorPid, this.self.host);
          this.store.db.run('UPDATE execs SET pid = ?, supervisor_pid = ?, supervisor_started = ?, boot_id = ?, started_at = ? WHERE id = ?', e.pid, e.supervisorPid, who.started, who.host, this.store.now(), id);
          this.emit(live, { type: 'started', exec: id, pid: e.pid });
        } else if (e.type === 'stdout' || e.type === 'stderr') {
          const chunk = this.output.append(id, e.type, e.data);
          live.flow.produced = chunk.offset + e.data.length;
          const held = live.held;
          if (held) {
            held.total += e.data.length;
            if (held.reader !== null && held.total - held.reader > HOLD_HIGH) held.hold?.pause();
          }
          if (live.terminal && live.flow.acking > 0 && live.flow.produced - live.flow.acked > FLOW_HIGH) live.terminal.pause();
          this.emit(live, { type: 'output', ...chunk });
        } else if (e.type === 'heartbeat') {
          this.emit(live, { type: 'heartbeat', elapsedMs: e.elapsedMs });
        }
      },
    };
    live.done = this.runner.run(execRequest).then(
      (result) => this.finish(live, result.status, result),
      // run() reports failures in its result; a throw here is a bug, and the exec still ends.
      () => this.finish(live, 'failed', null),
    );
    return { info: this.get(id, scope), done: live.done };
  }

  /**
   * Docker's exec instance flow, first step: the exec is recorded (state created) and nothing runs
   * until startCreated(). The request is checked now, so a bad one never becomes an exec.
   */
  create(sandboxIdOrName: string, request: Omit<StartRequest, 'background' | 'signal' | 'stdin'>, scope: Scope = OWNER): ExecInfo {
    if (typeof request !== 'object' || request === null || Array.isArray(request)) throw new CorralError('INVALID_ARGUMENT', 'the exec request must be an object');
    const sandbox = this.sandboxes.get(sandboxIdOrName, scope);
    if (sandbox.state === 'destroyed') throw new CorralError('SANDBOX_STATE', `sandbox ${sandbox.id} is destroyed`, { sandbox: sandbox.id, state: sandbox.state });
    validateEnv(request.env, 'the exec env');
    const id = newId('exec', this.store.now());
    if (request.user !== undefined) resolveSandboxUser(request.user);
    const plain = { argv: request.argv, shell: request.shell, cwd: request.cwd, env: request.env, timeoutMs: request.timeoutMs, tty: request.tty, user: request.user, openStdin: request.openStdin, attachStdout: request.attachStdout, attachStderr: request.attachStderr };
    this.store.db.run("INSERT INTO execs(id, sandbox_id, state, request, created_at) VALUES (?, ?, 'created', ?, ?)", id, sandbox.id, JSON.stringify(plain), this.store.now());
    return this.get(id, scope);
  }

  /** Starts a created exec (detached: it runs on its own; attach with frames() or the WebSocket). A start that fails marks it failed. */
  startCreated(id: string, options: { tty?: TerminalSize } = {}, scope: Scope = OWNER): { info: ExecInfo; done: Promise<ExecInfo> } {
    const row = this.row(id, scope);
    if (row.state !== 'created') throw new CorralError('EXEC_STATE', `exec ${id} is ${row.state}: only a created exec can be started`, { exec: id, state: row.state });
    const stored = JSON.parse(row.request ?? '{}') as StartRequest;
    if (options.tty && !stored.tty) throw new CorralError('INVALID_ARGUMENT', `exec ${id} was created without tty: give the terminal's size at create, start only sets its initial size`, { exec: id });
    try {
      return this.start(row.sandbox_id, { ...stored, ...(options.tty ? { tty: options.tty } : {}), background: true }, scope, id);
    } catch (e) {
      const err = toCorralError(e);
      this.store.db.run("UPDATE execs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? AND state = 'created'", JSON.stringify({ code: err.code, message: err.message }), this.store.now(), id);
      throw e;
    }
  }

  /** Runs an exec to its end (collected): its result envelope. */
  async run(sandboxIdOrName: string, request: StartRequest, scope: Scope = OWNER): Promise<ExecResult> {
    const { done } = this.start(sandboxIdOrName, { ...request, background: false }, scope);
    const info = await done;
    return info.result!;
  }

  get(id: string, scope: Scope = OWNER): ExecInfo {
    return toInfo(this.row(id, scope));
  }

  /** A sandbox's execs, newest last; `state` filters. */
  list(sandboxIdOrName: string, filter: { state?: ExecState } = {}, scope: Scope = OWNER): ExecInfo[] {
    const sandbox = this.sandboxes.get(sandboxIdOrName, scope);
    const rows =
      filter.state === undefined
        ? this.store.db.all<ExecRow>('SELECT * FROM execs WHERE sandbox_id = ? ORDER BY rowid', sandbox.id)
        : this.store.db.all<ExecRow>('SELECT * FROM execs WHERE sandbox_id = ? AND state = ? ORDER BY rowid', sandbox.id, filter.state);
    return rows.map((r) => toInfo(r));
  }

  /** Waits until the exec ends or `timeoutMs` passes (or `signal` aborts); the info either way. */
  async wait(id: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}, scope: Scope = OWNER): Promise<ExecInfo> {
    const info = this.get(id, scope);
    const live = this.live.get(id);
    if (!live || info.state !== 'running') return info;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      if (options.timeoutMs !== undefined) timer = setTimeout(resolve, options.timeoutMs);
      options.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([live.done, gaveUp]);
    clearTimeout(timer);
    return this.get(id, scope);
  }

  /**
   * Sends a signal to a running exec: TERM and KILL (the defaults) end the whole tree the usual way
   * (TERM, grace, KILL); any other signal goes to the command's own process.
   */
  kill(id: string, signal: string | number = 'KILL', scope: Scope = OWNER): ExecInfo {
    const sig = parseSignal(signal);
    const info = this.get(id, scope);
    const live = this.live.get(id);
    if (!live || info.state !== 'running') throw new CorralError('EXEC_STATE', `exec ${id} is ${info.state}: only a running exec takes signals`, { exec: id, state: info.state });
    if (sig === 9 || sig === 15) live.abort.abort();
    else if (live.pid !== null) {
      try {
        process.kill(commandPid(live.pid), sig);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    } else throw new CorralError('EXEC_STATE', `exec ${id} has not started its command yet: send the signal again in a moment, or KILL to cancel it`, { exec: id });
    return info;
  }

  /** Writes to the exec's open stdin (openStdin: true), or types into its terminal. */
  writeStdin(id: string, data: Uint8Array, scope: Scope = OWNER): void {
    const live = this.liveOf(id, scope);
    if (live.terminal) live.terminal.write(data);
    else if (live.early) {
      // Typed before the terminal exists: kept for it, within reason.
      if (live.early.input.reduce((n, b) => n + b.length, 0) + data.length > EARLY_INPUT_MAX)
        throw new CorralError('EXEC_STATE', `exec ${id} has no terminal yet: send input once it started (more than ${EARLY_INPUT_MAX} bytes are waiting)`, { exec: id });
      live.early.input.push(new Uint8Array(data));
    }
    else this.openStdin(live).write(data);
  }

  /** Ends the exec's stdin (EOF; a terminal gets ^D). */
  closeStdin(id: string, scope: Scope = OWNER): void {
    const live = this.liveOf(id, scope);
    if (live.terminal) live.terminal.end();
    else if (live.early) live.early.ended = true;
    else this.openStdin(live).end();
  }

  /** Resizes the exec's terminal. */
  resize(id: string, cols: number, rows: number, scope: Scope = OWNER): void {
    const live = this.liveOf(id, scope);
    if (!live.terminal) throw new CorralError('EXEC_STATE', `exec ${id} has no terminal${live.pid === null ? ' yet' : ''}: start it with tty to resize it`, { exec: id });
    live.terminal.resize(cols, rows);
  }

  /**
   * Terminal flow control: a client that reads the output says how far it got (a stdout offset).
   * While any such client is attached (`attach`/`detach`), the terminal pauses when the output runs
   * FLOW_HIGH bytes ahead of the acknowledgements and resumes below FLOW_LOW.
   */
  flowControl(id: string, change: { attach?: boolean; detach?: boolean; acked?: number }, scope: Scope = OWNER): void {
    const live = this.live.get(id);
    this.get(id, scope);
    if (!live) return;
    if (change.attach) live.flow.acking++;
    if (change.detach) live.flow.acking = Math.max(0, live.flow.acking - 1);
    if (change.acked !== undefined && Number.isSafeInteger(change.acked)) live.flow.acked = Math.max(live.flow.acked, change.acked);
    const behind = live.flow.produced - live.flow.acked;
    if (live.terminal?.paused && (live.flow.acking === 0 || behind < FLOW_LOW)) live.terminal.resume();
  }

  /**
   * Everything of an exec from the given offsets on, oldest first: its output (stored bytes first,
   * with a gap frame where bytes are no longer kept, then the live tail), heartbeats, and the exit
   * frame last. Pull-based: the bytes come from the output store at the reader's pace, so a slow
   * reader costs the daemon one page of memory, not a growing queue. With follow false it stops at
   * the end of what exists now (an ended exec still gets its exit frame).
   */
  async *frames(
    id: string,
    from: { stdout?: number; stderr?: number } = {},
    options: {
      follow?: boolean;
      signal?: AbortSignal;
      /** This reader owns the exec's output hold (see holdForReader). */
      hold?: boolean;
      /** The output streams to send (default both: an attached client passes attachedStreams()). */
      streams?: readonly OutputStream[];
    } = {},
    scope: Scope = OWNER,
  ): AsyncGenerator<ExecFrame> {
    this.get(id, scope);
    const streams = options.streams ?? (['stdout', 'stderr'] as const);
    const sent: Record<OutputStream, number> = { stdout: from.stdout ?? 0, stderr: from.stderr ?? 0 };
    for (const stream of ['stdout', 'stderr'] as const) {
      const v = sent[stream];
      if (!Number.isSafeInteger(v) || v < 0) throw new CorralError('INVALID_ARGUMENT', `the ${stream} offset must be a whole number of bytes, 0 or more`, { [stream]: String(v).slice(0, 20) });
    }
    const follow = options.follow ?? true;
    const live = this.live.get(id);
    const control: ExecFrame[] = [];
    let wake: (() => void) | null = null;
    let poked = false;
    /** The exec as it ended, from its exit frame (its result is not read back and parsed again). */
    let exited: ExecInfo | null = null;
    const watcher = (f: ExecFrame): void => {
      // Output is read from the store; only the rare frames wait here (one heartbeat at most).
      if (f.type === 'exit') exited = f.exec;
      else if (f.type === 'started') control.push(f);
      else if (f.type === 'heartbeat') {
        const i = control.findIndex((c) => c.type === 'heartbeat');
        if (i >= 0) control.splice(i, 1);
        control.push(f);
      }
      poked = true;
      wake?.();
    };
    const onAbort = (): void => wake?.();
    const held = options.hold ? live?.held : undefined;
    if (held) held.reader = sent.stdout + sent.stderr;
    live?.watchers.add(watcher);
    options.signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (options.signal?.aborted) return;
        const ended = !this.live.has(id);
        poked = false;
        while (control.length > 0) yield control.shift()!;
        let progressed = false;
        for (const stream of streams) {
          const page = this.output.read(id, stream, sent[stream], PAGE_BYTES);
          if (page.start > sent[stream]) {
            yield { type: 'gap', stream, from: sent[stream], to: page.start };
            sent[stream] = page.start;
          }
          // A burst of small contiguous chunks (within FRAME_MERGE_US of the first) is one frame:
          // fewer, larger frames cost the reader less, and each frame's atUs stays that of its bytes.
          // A large chunk is a frame as it is, without a copy.
          for (let i = 0; i < page.chunks.length; ) {
            const first = page.chunks[i]!;
            let n = 1;
            let size = first.data.length;
            for (let c = page.chunks[i + n]; c && size < FRAME_MERGE_BELOW && c.offset === first.offset + size && c.atUs - first.atUs < FRAME_MERGE_US; c = page.chunks[i + ++n]) size += c.data.length;
            const data = n === 1 ? first.data : Buffer.concat(page.chunks.slice(i, i + n).map((c) => c.data), size);
            i += n;
            yield { type: 'output', stream, offset: first.offset, atUs: first.atUs, data };
            sent[stream] = first.offset + data.length;
            progressed = true;
            if (held) {
              held.reader = sent.stdout + sent.stderr;
              if (held.hold?.paused && held.total - held.reader < HOLD_LOW) held.hold.resume();
            }
          }
        }
        if (progressed) continue;
        if (ended) {
          const info = exited ?? this.get(id, scope);
          if (info.state !== 'running') yield { type: 'exit', exec: info };
          return;
        }
        if (!follow) return;
        if (!poked) await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      live?.watchers.delete(watcher);
      options.signal?.removeEventListener('abort', onAbort);
      if (held) {
        held.reader = null;
        held.hold?.resume();
      }
    }
  }

  /** Execs running now in this process (all sandboxes, or one). */
  running(sandboxId?: string): string[] {
    return [...this.live.values()].filter((l) => sandboxId === undefined || l.sandbox === sandboxId).map((l) => l.id);
  }

  /** Cancels the running execs (of one sandbox, or all) and waits for them to end. */
  async cancelAll(sandboxId?: string): Promise<void> {
    const lives = [...this.live.values()].filter((l) => sandboxId === undefined || l.sandbox === sandboxId);
    for (const l of lives) l.abort.abort();
    await Promise.all(lives.map((l) => l.done));
  }

  /** Waits for the running execs up to `deadlineMs`, then cancels the rest (the daemon's drain). */
  async drain(deadlineMs: number): Promise<void> {
    const all = [...this.live.values()].map((l) => l.done);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(all), new Promise<void>((r) => (timer = setTimeout(r, deadlineMs)))]);
    clearTimeout(timer);
    await this.cancelAll();
    this.output.flushAll();
  }

  /** Destroys a sandbox after ending its execs. */
  async destroySandbox(idOrName: string, options: { keepFork?: boolean } = {}, scope: Scope = OWNER) {
    const sandbox = this.sandboxes.get(idOrName, scope);
    await this.cancelAll(sandbox.id);
    return this.sandboxes.destroy(sandbox.id, options, scope);
  }

  /**
   * After a daemon crash: execs recorded as running that no process of ours runs are marked lost (their
   * output so far is kept); a supervisor of theirs still alive is killed with its tree (its own
   * orphan handling normally did that already). Returns the ids marked lost.
   */
  recoverLost(): string[] {
    const rows = this.store.db.all<ExecRow>("SELECT * FROM execs WHERE state = 'running'");
    const lost: string[] = [];
    for (const r of rows) {
      if (this.live.has(r.id)) continue;
      if (r.supervisor_pid !== null && r.boot_id !== null && processAlive({ pid: r.supervisor_pid, started: r.supervisor_started ?? '', host: r.boot_id }, this.self)) {
        try {
          process.kill(r.supervisor_pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
      const ends = this.output.ends(r.id);
      this.store.db.run("UPDATE execs SET state = 'lost', finished_at = ?, stdout_bytes = ?, stderr_bytes = ? WHERE id = ? AND state = 'running'", this.store.now(), ends.stdout, ends.stderr, r.id);
      lost.push(r.id);
    }
    return lost;
  }

  private liveOf(id: string, scope: Scope): Live {
    const info = this.get(id, scope);
    const live = this.live.get(id);
    if (!live || info.state !== 'running') throw new CorralError('EXEC_STATE', `exec ${id} is ${info.state}: its stdin is closed`, { exec: id, state: info.state });
    return live;
  }

  private openStdin(live: Live): PassThrough {
    const id = live.id;
    if (!live.stdin) throw new CorralError('EXEC_STATE', `exec ${id} was started without openStdin: its stdin is not writable`, { exec: id });
    if (live.stdin.writableEnded) throw new CorralError('EXEC_STATE', `the stdin of exec ${id} was closed already`, { exec: id });
    return live.stdin;
  }

  private emit(live: Live, frame: ExecFrame): void {
    for (const w of live.watchers) {
      try {
        w(frame);
      } catch {
        /* a watcher's failure is its own */
      }
    }
  }

  private finish(live: Live, state: ExecState, result: ExecResult | null): ExecInfo {
    this.output.finish(live.id);
    const ends = this.output.ends(live.id);
    this.store.db.run(
      'UPDATE execs SET state = ?, result = ?, finished_at = ?, stdout_bytes = ?, stderr_bytes = ? WHERE id = ?',
      state, result === null ? null : JSON.stringify(result), this.store.now(), ends.stdout, ends.stderr, live.id,
    );
    const usage = result?.usage;
    this.store.db.run(
      'UPDATE sandboxes SET last_active_at = ?, execs_total = execs_total + 1, cpu_ms = cpu_ms + ?, peak_memory_bytes = CASE WHEN ? IS NULL THEN peak_memory_bytes ELSE max(coalesce(peak_memory_bytes, 0), ?) END WHERE id = ?',
      this.store.now(), Math.round(usage?.cpuMs ?? 0), usage?.peakMemoryBytes ?? null, usage?.peakMemoryBytes ?? null, live.sandbox,
    );
    this.live.delete(live.id);
    live.stdin?.destroy();
    // The result just stored is not read back and parsed again (it may hold megabytes of output).
    const info = toInfo(this.store.db.get<ExecRow>(`SELECT ${ROW_WITHOUT_RESULT} FROM execs WHERE id = ?`, live.id)!, result);
    this.events.publish('exec.exited', {
      sandbox: live.sandbox,
      tenant: live.tenant,
      data: { exec: live.id, status: state, exitCode: info.exitCode, durationMs: result?.durationMs ?? null, decision: result?.decision?.action ?? null, background: info.background },
    });
    this.emit(live, { type: 'exit', exec: info });
    return info;
  }

  private row(id: string, scope: Scope): ExecRow {
    const shown = String(id).slice(0, 80);
    if (typeof id !== 'string' || !isExecId(id)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not an exec id (exec_…)`, { exec: shown });
    const r = this.store.db.get<ExecRow>('SELECT * FROM execs WHERE id = ?', id);
    if (!r || (scope.tenant !== null && this.sandboxes.tenantOf(r.sandbox_id) !== scope.tenant)) throw new CorralError('EXEC_NOT_FOUND', `no exec '${id}'`, { exec: id });
    return r;
  }

  /** A tenant's quota on execs running at once (across its sandboxes and every daemon on this home). */
  private checkExecQuota(tenant: string | null): void {
    if (tenant === null) return;
    const max = this.store.db.get<{ max_concurrent_execs: number | null }>('SELECT max_concurrent_execs FROM tenants WHERE name = ?', tenant)?.max_concurrent_execs ?? null;
    if (max === null) return;
    const running = this.store.db.get<{ n: number }>("SELECT count(*) AS n FROM execs e JOIN sandboxes s ON s.id = e.sandbox_id WHERE s.tenant = ? AND e.state = 'running'", tenant)!.n;
    if (running >= max) throw new CorralError('QUOTA_EXCEEDED', `tenant ${tenant} has ${running} execs running, its quota is ${max}: wait for one to end`, { tenant, quota: 'concurrentExecs', limit: max });
  }
}
