// The SDK's entry point: Corral.connect() and the daemon-wide operations (ping, system, health,
// capabilities, sandboxes, execs by id, approvals, the event stream).
import type { CapabilitiesList, ExecRecord, Health, Ping, SandboxCreate, SandboxList, Sandbox as SandboxInfo, SandboxState, SystemInfo } from '../protocol/api-schemas.ts';
import type { policyPresetNames } from '../protocol/sandbox-spec.ts';
import { ApiClient, type CallOptions, type FetchLike } from './api-client.ts';
import { Approvals } from './approval-client.ts';
import { EventStream, type CorralEventsOptions } from './event-stream.ts';
import { ExecHandle } from './exec-handle.ts';
import { Sandbox } from './sandbox-handle.ts';
import { CorralApiError } from './sdk-errors.ts';
import { globalWebSocketFactory, type WebSocketFactory } from './web-socket.ts';

/** The default time limit of one call, in ms. */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface ConnectOptions {
  /** The daemon's base URL, e.g. `http://127.0.0.1:8420` (required; the Node subpath's connect() also takes a Unix socket). */
  url: string;
  /** An API key (`crl_…`), sent as `Authorization: Bearer`; TCP needs one, the Unix socket does not (default: none). */
  apiKey?: string;
  /** What sends requests (default: the global fetch). */
  fetch?: FetchLike;
  /** Milliseconds each call may take before it fails with TIMEOUT, unless the call says otherwise; 0 turns it off (default 60000). */
  timeoutMs?: number;
  /**
   * What opens WebSockets (terminals) (default: the global WebSocket, with the API key sent as the
   * subprotocol corral.key.<key>; connect() from 'corral/node' passes one that reaches the Unix socket).
   */
  webSocket?: WebSocketFactory;
}

/** Resource limits applied to every exec of a sandbox; one the backend cannot enforce fails the exec (LIMIT_UNENFORCEABLE). */
export interface SandboxLimits {
  /** Memory of each exec, in bytes (default: 4 GiB or half the RAM, where enforceable). */
  memoryBytes?: number;
  /** Processes of each exec (default 4096, where enforceable). */
  pids?: number;
  /** CPU of each exec: 100 = one core (default: no limit). */
  cpuPercent?: number;
  /** Size of the exec's /tmp, in bytes (default: the backend's). */
  tmpSizeBytes?: number;
}

/** What a new sandbox works on and how its commands run (every field optional). */
export interface SandboxSpec {
  /** An existing vault to work on (default: a new empty vault named after the sandbox id). */
  vault?: string;
  /** Work on a fork of the vault (default true); false works on the vault itself. */
  fork?: boolean;
  /** A unique name among live sandboxes: vault-name rules, not starting with sbx_ (default: none). */
  name?: string;
  /** The isolation backend (default auto: namespace where available, else host). */
  backend?: 'auto' | 'host' | 'namespace';
  /** A policy preset (default workstation); policy files are never taken over the API. */
  policy?: (typeof policyPresetNames)[number];
  /** Limits of every exec (default: Corral's defaults where the backend enforces them). */
  limits?: SandboxLimits;
  /** none: loopback only; host: the host's network, where the policy allows it (default none). */
  network?: 'none' | 'host';
  /** Environment variables of every exec, at most 128 (default: none). */
  env?: Record<string, string>;
  /** Labels to filter lists by, at most 64 (default: none). */
  labels?: Record<string, string>;
  /** Lifetime in seconds, 1 to 604800 (7 days); an expired sandbox is destroyed (default: none). */
  ttlSeconds?: number;
  /** Seconds without a running exec before the sandbox is paused, 1 to 604800 (default: never). */
  idleTimeoutSeconds?: number;
}

export interface SandboxListOptions extends CallOptions {
  /** Only sandboxes in this state (default: the live ones, ready and paused). */
  state?: SandboxState;
  /** Only sandboxes carrying every one of these labels (default: no filter). */
  labels?: Record<string, string>;
}

/** Sandboxes of the daemon (an API key sees its tenant's only). */
export class Sandboxes {
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  /** Creates a sandbox from a spec (every field optional: a new empty vault, namespace backend where available, the workstation policy, no network). */
  async create(spec: SandboxSpec = {}, options: CallOptions = {}): Promise<Sandbox> {
    return new Sandbox(this.client, await this.client.json<SandboxInfo>({ method: 'POST', path: '/v1/sandboxes', json: spec satisfies SandboxCreate }, options));
  }

  /** Sandboxes, oldest first. */
  async list(options: SandboxListOptions = {}): Promise<Sandbox[]> {
    const { state, labels, ...call } = options;
    const label = Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`);
    const list = await this.client.json<SandboxList>({ method: 'GET', path: '/v1/sandboxes', query: { state, label } }, call);
    return list.sandboxes.map((s) => new Sandbox(this.client, s));
  }

  /** A sandbox by id (sbx_…); a destroyed one too, an expired or another tenant's one is SANDBOX_NOT_FOUND. */
  async get(id: string, options: CallOptions = {}): Promise<Sandbox> {
    return new Sandbox(this.client, await this.client.json<SandboxInfo>({ method: 'GET', path: `/v1/sandboxes/${encodeURIComponent(id)}` }, options));
  }
}

/** Execs by id, whichever sandbox they run in. */
export class Execs {
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  /** A handle on an exec by id (exec_…): re-attach to its output, wait for it, kill it. */
  async get(id: string, options: CallOptions = {}): Promise<ExecHandle> {
    return new ExecHandle(this.client, await this.client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${encodeURIComponent(id)}` }, options));
  }
}

/** A client of a Corral daemon. Connecting does no I/O: the first call reports an unreachable daemon (UNAVAILABLE); ping() checks. */
export class Corral {
  readonly sandboxes: Sandboxes;
  readonly execs: Execs;
  readonly approvals: Approvals;
  readonly #client: ApiClient;
  readonly #fetch: FetchLike;

  private constructor(client: ApiClient, fetchFn: FetchLike) {
    this.#client = client;
    this.#fetch = fetchFn;
    this.sandboxes = new Sandboxes(client);
    this.execs = new Execs(client);
    this.approvals = new Approvals(client);
  }

  static connect(options: ConnectOptions): Corral {
    if (typeof options?.url !== 'string' || !/^https?:\/\/[^/]/i.test(options.url)) {
      throw new CorralApiError('INVALID_ARGUMENT', `give the daemon's URL, such as http://127.0.0.1:8420 (got ${JSON.stringify(options?.url)}); in Node, connect() from 'corral/node' also takes a Unix socket`, {});
    }
    const fetchFn: FetchLike | undefined = options.fetch ?? (typeof globalThis.fetch === 'function' ? globalThis.fetch.bind(globalThis) : undefined);
    if (!fetchFn) throw new CorralApiError('INVALID_ARGUMENT', 'this platform has no global fetch: pass one as the fetch option', {});
    const client = new ApiClient({
      url: options.url,
      fetch: fetchFn,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      webSocket: options.webSocket ?? globalWebSocketFactory(),
      ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
    });
    return new Corral(client, fetchFn);
  }

  /** Where requests go: the URL, or the transport's endpoint (unix:/path). */
  get endpoint(): string {
    return this.#client.endpoint;
  }

  /** Whether the daemon answers, and its version (with an apiKey, the key is checked too). */
  ping(options: CallOptions = {}): Promise<Ping> {
    return this.#client.json<Ping>({ method: 'GET', path: '/v1/ping' }, options);
  }

  /** The daemon's machine: kernel, OS, arch, hostname, memory, CPUs, load, uptime. */
  system(options: CallOptions = {}): Promise<SystemInfo> {
    return this.#client.json<SystemInfo>({ method: 'GET', path: '/v1/system' }, options);
  }

  /** Each backend's health; `ok` is false when no backend can run commands (the daemon answers 503 then). */
  health(options: CallOptions = {}): Promise<Health> {
    return this.#client.json<Health>({ method: 'GET', path: '/v1/health', okStatuses: [503] }, options);
  }

  /** Each backend's probe: isolation, enforceable limits, change detection. */
  async capabilities(options: CallOptions = {}): Promise<CapabilitiesList['backends']> {
    return (await this.#client.json<CapabilitiesList>({ method: 'GET', path: '/v1/capabilities' }, options)).backends;
  }

  /**
   * The daemon's events as they happen (sandboxes created, paused, checkpointed, destroyed, execs
   * started and exited, approvals): every sandbox the caller may see, or one (`sandbox`). The request
   * goes out at once; `await stream.ready` before acting to be sure to see what follows. With
   * `after`, kept events after that seq are replayed first. A dropped connection is re-attached once
   * with Last-Event-ID; events lost in between come as a `reset` event.
   */
  events(options: CorralEventsOptions = {}): EventStream {
    const sandbox = options.sandbox;
    if (sandbox !== undefined) return new EventStream(this.#client, `/v1/sandboxes/${encodeURIComponent(sandbox)}/events`, { ...options, sandbox: undefined }, true);
    return new EventStream(this.#client, '/v1/events', options, false);
  }

  /** Releases the transport's idle connections (the Node socket transport's); calls in flight finish. */
  close(): void {
    this.#fetch.close?.();
  }
}
