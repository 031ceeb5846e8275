// A sandbox as a client object: its fields (as last seen) and what can be done in it: exec (collected,
// checked, background, streamed), its execs, terminals, processes, files and checkpoints, its
// lifecycle (extend, pause, resume, destroy) and its events.
import type { ExecList, ExecRecord, ExecRequestBody, ExecResultEnvelope, Sandbox as SandboxInfo } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions } from './api-client.ts';
import { SandboxCheckpoints } from './checkpoint-client.ts';
import { EventStream, type EventStreamOptions } from './event-stream.ts';
import { ExecHandle, ExecStream } from './exec-handle.ts';
import { SandboxFiles } from './file-client.ts';
import { SandboxProcesses } from './process-client.ts';
import { SandboxPty } from './terminal.ts';
import { base64Encode, toBytes } from './sdk-bytes.ts';
import { CommandExitError, commandFailed } from './sdk-errors.ts';

/** The daemon's default wall-clock limit of a command (ms). */
const DEFAULT_COMMAND_TIMEOUT_MS = 300_000;
/** How much longer than the command's own limit a collected exec's request may take. */
const REQUEST_MARGIN_MS = 30_000;

/** What a command is: a string runs as `bash -c` (never a login shell), an array is the argv (no shell). */
export type Command = string | readonly string[];

interface CommandOptions {
  /** The working directory: relative to the workspace, or absolute under /workspace (default: the workspace root). */
  cwd?: string;
  /** Variables added to the sandbox's env for this command; they win (default: none). */
  env?: Record<string, string>;
  /** The command's wall-clock limit in ms, enforced by the daemon (default 300000). */
  timeoutMs?: number;
  /** Cancels the request; a collected or streamed exec is cancelled with it (default: none). */
  signal?: AbortSignal;
  /** A real terminal of this size (1..1000 each; default: none): stdout is what it showed, stderr is empty. */
  tty?: { cols: number; rows: number };
  /**
   * Milliseconds the HTTP call may take before it fails with TIMEOUT (default: a collected exec waits
   * the command's timeoutMs + 30 s; a background or streamed one, the client's timeoutMs until the answer starts).
   */
  requestTimeoutMs?: number;
}

export interface ExecOptions extends CommandOptions {
  /** Standard input: bytes, or a string sent as UTF-8 (default: none, EOF at once). */
  stdin?: string | Uint8Array;
  /** Throw CommandExitError (carrying the result) unless the command completed with exit code 0 (default false). */
  check?: boolean;
  /** Run in the background and resolve with an ExecHandle (default false: wait for the result). */
  background?: false;
  /**
   * When the policy asks a person to approve the command, wait up to this many ms for the answer
   * and run it if approved (default 0: the result is `pending` at once, with the approval's id).
   */
  waitForApprovalMs?: number;
}

export interface BackgroundExecOptions extends CommandOptions {
  /** Run in the background: resolve at once with an ExecHandle (required here; the default, false, is ExecOptions). */
  background: true;
  /** Standard input, exclusive with openStdin (default: none). */
  stdin?: string | Uint8Array;
  /** Keep stdin open for handle.stdin.write() and end() (default false). */
  openStdin?: boolean;
}

export interface StreamOptions extends CommandOptions {
  /** Standard input, exclusive with openStdin (default: none). */
  stdin?: string | Uint8Array;
  /** Keep stdin open for stream.stdin.write() and end() (default false). */
  openStdin?: boolean;
}

export interface DestroyOptions extends CallOptions {
  /** Keep the sandbox's own vault (its fork) instead of deleting it (default false). */
  keepFork?: boolean;
}

function requestBody(cmd: Command, options: CommandOptions & { stdin?: string | Uint8Array; openStdin?: boolean; waitForApprovalMs?: number }, background: boolean): ExecRequestBody {
  return {
    ...(typeof cmd === 'string' ? { shell: cmd } : { argv: [...cmd] }),
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.stdin !== undefined ? { stdin: base64Encode(toBytes(options.stdin)) } : {}),
    ...(options.openStdin ? { openStdin: true } : {}),
    ...(options.waitForApprovalMs !== undefined ? { waitForApprovalMs: options.waitForApprovalMs } : {}),
    ...(options.tty ? { tty: { cols: options.tty.cols, rows: options.tty.rows } } : {}),
    ...(background ? { background: true } : {}),
  };
}

function callOf(options: CommandOptions, timeoutMs: number | undefined): CallOptions {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
}

/** A sandbox's execs. */
export class SandboxExecs {
  private readonly client: ApiClient;
  private readonly sandboxId: string;

  constructor(client: ApiClient, sandboxId: string) {
    this.client = client;
    this.sandboxId = sandboxId;
  }

  /** The sandbox's execs, oldest first. */
  async list(options: CallOptions & { /** Only execs in this state (default: all). */ state?: ExecRecord['state'] } = {}): Promise<ExecRecord[]> {
    const { state, ...call } = options;
    return (await this.client.json<ExecList>({ method: 'GET', path: `/v1/sandboxes/${this.sandboxId}/execs`, query: { state } }, call)).execs;
  }

  /** A handle on one exec by id. */
  async get(id: string, options: CallOptions = {}): Promise<ExecHandle> {
    return new ExecHandle(this.client, await this.client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${encodeURIComponent(id)}` }, options));
  }
}

export interface Sandbox extends SandboxInfo {}

/**
 * A sandbox: its fields as last seen (refresh() reads them again) and its operations. Creating one
 * started no process; each exec starts its own.
 */
export class Sandbox {
  /** Its execs: list, get. */
  readonly execs: SandboxExecs;
  /** Its files (its vault): read, write, edit, list, stat, mkdir, remove, move, download, upload, watch. */
  readonly files: SandboxFiles;
  /** Its terminals: create, attach. */
  readonly pty: SandboxPty;
  /** Its named processes: start, list, get. */
  readonly processes: SandboxProcesses;
  /** Its vault's checkpoints: save, list, restore, delete. */
  readonly checkpoints: SandboxCheckpoints;
  readonly #client: ApiClient;

  constructor(client: ApiClient, info: SandboxInfo) {
    Object.assign(this, info);
    this.#client = client;
    this.execs = new SandboxExecs(client, info.id);
    this.files = new SandboxFiles(client, info.id);
    this.pty = new SandboxPty(client, info.id);
    this.processes = new SandboxProcesses(client, info.id);
    this.checkpoints = new SandboxCheckpoints(client, info.id);
  }

  /** The fields alone, as the API sends them (also what JSON.stringify gives). */
  toJSON(): SandboxInfo {
    const { execs: _e, files: _f, pty: _t, processes: _p, checkpoints: _c, ...info } = this;
    return info as SandboxInfo;
  }

  /** Sets a new lifetime: it expires ttlSeconds from now, 1 to 604800 (7 days); one without a TTL gets one. Returns this (expiresAt updated). */
  async extend(ttlSeconds: number, options: CallOptions = {}): Promise<this> {
    Object.assign(this, await this.#client.json<SandboxInfo>({ method: 'POST', path: `/v1/sandboxes/${this.id}/extend`, json: { ttlSeconds } }, options));
    return this;
  }

  /**
   * Pauses it: every process of its running execs is stopped (SIGSTOP), and no exec may start
   * (SANDBOX_STATE) until resumed. Exec timeouts and the TTL keep running. Idempotent; returns this.
   */
  async pause(options: CallOptions = {}): Promise<this> {
    Object.assign(this, await this.#client.json<SandboxInfo>({ method: 'POST', path: `/v1/sandboxes/${this.id}/pause`, json: {} }, options));
    return this;
  }

  /** Resumes it (paused by a request or by its idle timeout): its processes continue (SIGCONT). Idempotent; returns this. */
  async resume(options: CallOptions = {}): Promise<this> {
    Object.assign(this, await this.#client.json<SandboxInfo>({ method: 'POST', path: `/v1/sandboxes/${this.id}/resume`, json: {} }, options));
    return this;
  }

  /**
   * Its events as they happen (paused, resumed, checkpointed, restored, exec.started, exec.exited,
   * destroyed, …), ending after destroyed. As corral.events(): the request goes out at once, `await
   * stream.ready` to be sure to see what follows; `after` replays kept events first.
   */
  events(options: EventStreamOptions = {}): EventStream {
    return new EventStream(this.#client, `/v1/sandboxes/${this.id}/events`, options, true);
  }

  /** Reads the sandbox again (its state may have changed); returns this. */
  async refresh(options: CallOptions = {}): Promise<this> {
    Object.assign(this, await this.#client.json<SandboxInfo>({ method: 'GET', path: `/v1/sandboxes/${this.id}` }, options));
    return this;
  }

  /** Destroys it: its running execs are cancelled first; its own vault is deleted unless keepFork. Idempotent; returns this. */
  async destroy(options: DestroyOptions = {}): Promise<this> {
    const { keepFork, ...call } = options;
    Object.assign(this, await this.#client.json<SandboxInfo>({ method: 'DELETE', path: `/v1/sandboxes/${this.id}`, query: { keepFork } }, call));
    return this;
  }

  /**
   * Runs a command. Collected (the default): resolves with the result envelope when it ends (a
   * non-zero exit, a timeout or a denial is data, not an error, unless check). With background:
   * resolves at once with an ExecHandle.
   */
  exec(cmd: Command, options: BackgroundExecOptions): Promise<ExecHandle>;
  exec(cmd: Command, options?: ExecOptions): Promise<ExecResultEnvelope>;
  async exec(cmd: Command, options: ExecOptions | BackgroundExecOptions = {}): Promise<ExecResultEnvelope | ExecHandle> {
    const path = `/v1/sandboxes/${this.id}/exec`;
    if (options.background) {
      const record = await this.#client.json<ExecRecord>({ method: 'POST', path, json: requestBody(cmd, options, true) }, callOf(options, options.requestTimeoutMs));
      return new ExecHandle(this.#client, record);
    }
    const timeoutMs = options.requestTimeoutMs ?? (options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS) + (options.waitForApprovalMs ?? 0) + REQUEST_MARGIN_MS;
    const result = await this.#client.json<ExecResultEnvelope>({ method: 'POST', path, json: requestBody(cmd, options, false) }, callOf(options, timeoutMs));
    if (options.check && commandFailed(result)) throw new CommandExitError(result);
    return result;
  }

  /** Runs a command like exec(), and throws CommandExitError (carrying the result) unless it completed with exit code 0. */
  execOrThrow(cmd: Command, options: Omit<ExecOptions, 'check'> = {}): Promise<ExecResultEnvelope> {
    return this.exec(cmd, { ...options, check: true });
  }

  /**
   * Runs a command and streams it: `for await (const frame of sandbox.stream(cmd))` gives started,
   * output (stdout and stderr as they come), heartbeats, and exit (with the result) last. The request
   * goes out when the iteration starts; leaving the loop cancels the command.
   */
  stream(cmd: Command, options: StreamOptions = {}): ExecStream {
    return new ExecStream(this.#client, `/v1/sandboxes/${this.id}/exec`, requestBody(cmd, options, false), callOf(options, options.requestTimeoutMs));
  }
}
