// Named processes of a sandbox (a dev server, a watcher) over the API: start with a restart policy,
// list, get, stop (TERM, grace, KILL), kill, remove, and logs across their runs.
import type { ExecRecord, ProcessInfoWire, ProcessList } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions } from './api-client.ts';
import { ExecHandle } from './exec-handle.ts';
import { logLines, type JsonLogOptions, type LogLine, type TextLogOptions } from './log-stream.ts';
import type { Command } from './sandbox-handle.ts';
import { CorralApiError } from './sdk-errors.ts';

export type ProcessInfo = ProcessInfoWire;
export type ProcessState = ProcessInfoWire['state'];

/** The daemon's grace between TERM and KILL when stopping a process (ms). */
const DEFAULT_STOP_GRACE_MS = 10_000;

export interface ProcessSpec {
  /** Unique among the sandbox's processes: 1-64 characters, vault-name rules (required). */
  name: string;
  /** What runs: a string runs as bash -c, an array is the argv (required). */
  cmd: Command;
  /** 'on-failure' restarts a run that failed (non-zero exit, a signal) with backoff (default 'no'). */
  restart?: 'no' | 'on-failure';
  /** With on-failure, restarts at most, 0 to 1000 (default 3). */
  maxRestarts?: number;
  /** Variables added to the sandbox's env; they win (default: none). */
  env?: Record<string, string>;
  /** The working directory: relative to the workspace, or absolute under /workspace (default: the workspace root). */
  cwd?: string;
  /** Wall-clock limit of one run in ms, enforced by the daemon (default 86400000, a day). */
  timeoutMs?: number;
}

export interface ProcessStopOptions {
  /** How long SIGTERM may take before SIGKILL, 0 to 600000 ms (default 10000). */
  timeoutMs?: number;
  /** Cancels the request (the stop may still happen) (default: none). */
  signal?: AbortSignal;
  /** Milliseconds the request may take (default: timeoutMs + the client's timeoutMs). */
  requestTimeoutMs?: number;
}

export interface ProcessRemoveOptions extends CallOptions {
  /** Remove a running process too: it is stopped first (TERM, 10 s, KILL) (default false: a running one is EXEC_STATE). */
  force?: boolean;
}

export interface Process extends ProcessInfo {}

/** A process: its fields as last seen (refresh() reads them again) and its operations. */
export class Process {
  readonly #client: ApiClient;

  constructor(client: ApiClient, info: ProcessInfo) {
    Object.assign(this, info);
    this.#client = client;
  }

  #update(info: ProcessInfo): this {
    Object.assign(this, info);
    return this;
  }

  /** The fields alone, as the API sends them (also what JSON.stringify gives). */
  toJSON(): ProcessInfo {
    return { ...this } as ProcessInfo;
  }

  /** Reads the process again (state, restarts, its current run); returns this. */
  async refresh(options: CallOptions = {}): Promise<this> {
    return this.#update(await this.#client.json<ProcessInfo>({ method: 'GET', path: `/v1/processes/${this.id}` }, options));
  }

  /** Stops it: SIGTERM, up to timeoutMs (default 10000), then SIGKILL; it is not restarted. Returns this (state stopped). */
  async stop(options: ProcessStopOptions = {}): Promise<this> {
    const grace = options.timeoutMs ?? DEFAULT_STOP_GRACE_MS;
    const base = this.#client.timeoutMs;
    const call = { ...(options.signal ? { signal: options.signal } : {}), timeoutMs: options.requestTimeoutMs ?? (base > 0 ? grace + base : 0) };
    return this.#update(await this.#client.json<ProcessInfo>({ method: 'POST', path: `/v1/processes/${this.id}/stop`, json: options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {} }, call));
  }

  /** Sends a signal to the current run (a name such as 'TERM' or a number; default KILL); the restart policy then applies. Returns this. */
  async kill(signal?: string | number, options: CallOptions = {}): Promise<this> {
    return this.#update(await this.#client.json<ProcessInfo>({ method: 'POST', path: `/v1/processes/${this.id}/kill`, json: signal === undefined ? {} : { signal } }, options));
  }

  /** Removes it (its name is free again); a running one only with force. Returns this (state removed). */
  async remove(options: ProcessRemoveOptions = {}): Promise<this> {
    const { force, ...call } = options;
    return this.#update(await this.#client.json<ProcessInfo>({ method: 'DELETE', path: `/v1/processes/${this.id}`, query: { force } }, call));
  }

  /** The exec of its current (or last) run, to wait for, read or signal; null before the first run. */
  async run(options: CallOptions = {}): Promise<ExecHandle | null> {
    await this.refresh(options);
    if (this.exec === null) return null;
    return new ExecHandle(this.#client, await this.#client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${this.exec}` }, options));
  }

  /**
   * Its logs across its runs, as lines of both streams in time order: LogLine objects ({ stream,
   * time, exec, text }), or text with format 'text'. With follow, the live output of the current run
   * follows until it ends (or the loop is left). The request goes out when the iteration starts.
   */
  logs(options?: JsonLogOptions): AsyncGenerator<LogLine>;
  logs(options: TextLogOptions): AsyncGenerator<string>;
  logs(options: JsonLogOptions | TextLogOptions = {}): AsyncGenerator<LogLine | string> {
    return logLines(this.#client, `/v1/processes/${this.id}/logs`, options);
  }
}

/** A sandbox's processes. */
export class SandboxProcesses {
  readonly #client: ApiClient;
  readonly #sandboxId: string;

  constructor(client: ApiClient, sandboxId: string) {
    this.#client = client;
    this.#sandboxId = sandboxId;
  }

  /** Starts a named process: a background exec with a restart policy. Resolves with it, running. CONFLICT when the name is taken. */
  async start(spec: ProcessSpec, options: CallOptions = {}): Promise<Process> {
    if (typeof spec?.name !== 'string') throw new CorralApiError('INVALID_ARGUMENT', 'give the process a name', {});
    if (typeof spec.cmd !== 'string' && !Array.isArray(spec.cmd)) throw new CorralApiError('INVALID_ARGUMENT', 'give the process a cmd: a shell string or an argv array', {});
    const body = {
      name: spec.name,
      ...(typeof spec.cmd === 'string' ? { shell: spec.cmd } : { argv: [...spec.cmd] }),
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      ...(spec.env !== undefined ? { env: spec.env } : {}),
      ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
      ...(spec.restart !== undefined ? { restart: spec.restart } : {}),
      ...(spec.maxRestarts !== undefined ? { maxRestarts: spec.maxRestarts } : {}),
    };
    return new Process(this.#client, await this.#client.json<ProcessInfo>({ method: 'POST', path: `/v1/sandboxes/${this.#sandboxId}/processes`, json: body }, options));
  }

  /** The sandbox's processes (removed ones are not listed). */
  async list(options: CallOptions & { /** Only the running ones (default false: all). */ running?: boolean } = {}): Promise<Process[]> {
    const { running, ...call } = options;
    const list = await this.#client.json<ProcessList>({ method: 'GET', path: `/v1/sandboxes/${this.#sandboxId}/processes`, query: { running: running ? true : undefined } }, call);
    return list.processes.map((p) => new Process(this.#client, p));
  }

  /** A process by id (proc_…); PROCESS_NOT_FOUND when it is not this sandbox's. */
  async get(id: string, options: CallOptions = {}): Promise<Process> {
    const info = await this.#client.json<ProcessInfo>({ method: 'GET', path: `/v1/processes/${encodeURIComponent(id)}` }, options);
    if (info.sandbox !== this.#sandboxId) throw new CorralApiError('PROCESS_NOT_FOUND', `process ${id} is not in sandbox ${this.#sandboxId}`, { status: 404, details: { process: id, sandbox: this.#sandboxId } });
    return new Process(this.#client, info);
  }
}
