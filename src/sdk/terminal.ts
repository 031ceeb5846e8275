// Terminals (PTY sessions) over the exec attach WebSocket: create an exec with a tty, start it, attach
// (`/v1/execs/{id}/attach?ack=true`, subprotocol corral.v1), then type, resize, signal and read its
// output, acknowledging what the consumer read so the daemon's flow control can pause a terminal
// whose reader falls behind. A dropped connection is re-attached once from the offsets reached.
import type { ExecFrameWire, ExecRecord } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions } from './api-client.ts';
import { frameOf, type OutputOffsets, type OutputStream } from './exec-frames.ts';
import { ExecHandle, type WaitOptions } from './exec-handle.ts';
import type { Command } from './sandbox-handle.ts';
import { base64Encode, toBytes } from './sdk-bytes.ts';
import { CommandExitError, CorralApiError, commandFailed } from './sdk-errors.ts';
import { onMessages, WS_OPEN, type WebSocketLike } from './web-socket.ts';

/** A terminal's default wall-clock limit: a day, the most an exec may have. */
const DEFAULT_TERMINAL_TIMEOUT_MS = 86_400_000;
/** Acknowledge at least every this many bytes read (and whenever the reader caught up). */
const ACK_STEP = 64 * 1024;
/** Characters (a string) or bytes per stdin message: well under the daemon's 1 MiB message limit, escaped or base64. */
const STRING_CHUNK = 64 * 1024;
const BYTES_CHUNK = 256 * 1024;

interface TerminalOptions {
  /** Acknowledge output as it is read, so the daemon pauses the terminal while the reader is more than 1 MiB behind (default true). Turn it off for a terminal whose output nobody reads. */
  flowControl?: boolean;
  /** Called with the daemon's answer to a message it refused (writing to an ended terminal, say) (default: ignored). */
  onError?: (error: CorralApiError) => void;
  /** Cancels the call (creating or attaching); the terminal is not affected once it resolved (default: none). */
  signal?: AbortSignal;
  /** Milliseconds each request and the opening of the WebSocket may take (default: the client's timeoutMs, 60000). */
  requestTimeoutMs?: number;
}

export interface PtyCreateOptions extends TerminalOptions {
  /** Columns, 1 to 1000 (required). */
  cols: number;
  /** Rows, 1 to 1000 (required). */
  rows: number;
  /** What runs on the terminal: a string runs as bash -c, an array is the argv (default ['bash', '-i']). */
  cmd?: Command;
  /** Variables added to the sandbox's env; they win (default: HISTFILE=/dev/null, so a shell's history stays out of the workspace). */
  env?: Record<string, string>;
  /** The working directory: relative to the workspace, or absolute under /workspace (default: the workspace root). */
  cwd?: string;
  /** The terminal's wall-clock limit in ms, enforced by the daemon (default 86400000, a day). */
  timeoutMs?: number;
}

export interface PtyAttachOptions extends TerminalOptions {
  /** Where to start reading: byte offsets of stdout and stderr (default 0 and 0: what the terminal showed so far, as far as it is kept). */
  from?: Partial<OutputOffsets>;
}

export interface TerminalCloseOptions {
  /** Leave the terminal running (re-attach with sandbox.pty.attach(id)) instead of killing it (default false). */
  keepRunning?: boolean;
}

function checkSize(cols: unknown, rows: unknown): void {
  for (const [name, v] of [['cols', cols], ['rows', rows]] as const) {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 1000) throw new CorralApiError('INVALID_ARGUMENT', `${name} must be a whole number from 1 to 1000, got ${String(v).slice(0, 40)}`, { [name]: v });
  }
}

function callOf(options: TerminalOptions): CallOptions {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(options.requestTimeoutMs !== undefined ? { timeoutMs: options.requestTimeoutMs } : {}) };
}

interface Chunk {
  data: Uint8Array;
  stream: OutputStream;
  /** The stream's offset after these bytes. */
  end: number;
}

/**
 * A terminal: an exec on a pseudo-terminal, attached over a WebSocket. `for await (const chunk of
 * terminal)` gives what it shows (Uint8Array chunks) until it exits; write() types, resize() resizes,
 * end() types ^D, kill() signals it, wait() resolves with its final record, close() ends the session.
 */
export class Terminal implements AsyncIterable<Uint8Array> {
  /** The exec's id (exec_…): re-attach with sandbox.pty.attach(id) or corral.execs.get(id). */
  readonly id: string;
  /** The sbx_ id of its sandbox. */
  readonly sandboxId: string;
  /** The final record once the terminal exited (its exit code in `exitCode`), else null. */
  record: ExecRecord | null = null;
  readonly #client: ApiClient;
  readonly #flowControl: boolean;
  readonly #onError: ((e: CorralApiError) => void) | undefined;
  #ws: WebSocketLike;
  /** Offsets of what arrived, per stream (where a re-attach resumes). */
  readonly #received: OutputOffsets;
  readonly #queue: Chunk[] = [];
  #wake: (() => void) | null = null;
  #iterating = false;
  #closedByUs = false;
  #reconnecting = false;
  #failure: unknown = null;
  /** stdout read by the consumer, and the last offset acknowledged. */
  #consumed: number;
  #acked: number;
  /** Settles when the exit frame came or the connection is lost for good. */
  readonly #ended: Promise<void>;
  #resolveEnded!: () => void;

  /** @internal Use sandbox.pty.create() or sandbox.pty.attach(). */
  constructor(client: ApiClient, exec: { id: string; sandbox: string }, ws: WebSocketLike, from: OutputOffsets, options: TerminalOptions) {
    this.#client = client;
    this.id = exec.id;
    this.sandboxId = exec.sandbox;
    this.#flowControl = options.flowControl ?? true;
    this.#onError = options.onError;
    this.#received = { ...from };
    this.#consumed = from.stdout;
    this.#acked = from.stdout;
    this.#ended = new Promise<void>((resolve) => (this.#resolveEnded = resolve));
    this.#ws = ws;
    this.#listen(ws);
  }

  /** Opens the attach socket of exec `id` from `from`; rejects with a typed error when refused. */
  static async open(client: ApiClient, exec: { id: string; sandbox: string }, from: OutputOffsets, options: TerminalOptions): Promise<Terminal> {
    const ws = await attachSocket(client, exec.id, from, options.flowControl ?? true, callOf(options));
    return new Terminal(client, exec, ws, from, options);
  }

  /** The exit code once it exited (null when a signal ended it), else null. */
  get exitCode(): number | null {
    return this.record?.exitCode ?? null;
  }

  /** Whether the connection is open (input can be sent). */
  get connected(): boolean {
    return this.#ws.readyState === WS_OPEN;
  }

  #listen(ws: WebSocketLike, onFirst?: () => void): void {
    ws.onerror = () => undefined;
    ws.onclose = () => {
      if (ws !== this.#ws) return;
      if (this.record !== null || this.#closedByUs) return this.#finish();
      void this.#reattach();
    };
    let first = onFirst;
    onMessages(ws, (event) => {
      if (first) {
        first();
        first = undefined;
      }
      this.#message(event.data);
    });
  }

  #message(data: unknown): void {
    if (typeof data !== 'string') return;
    let wire: ExecFrameWire | { type: 'error'; error?: { code?: string; message?: string; details?: Record<string, unknown>; requestId?: string } };
    try {
      wire = JSON.parse(data);
    } catch {
      return;
    }
    if (wire.type === 'error') {
      const e = wire.error ?? {};
      this.#onError?.(new CorralApiError(e.code ?? 'INTERNAL', e.message ?? 'the daemon refused a message', { details: e.details ?? {}, requestId: e.requestId ?? null }));
      return;
    }
    const frame = frameOf(wire);
    if (frame === null) return;
    if (frame.type === 'output') {
      const end = frame.offset + frame.data.length;
      // A replay after a re-attach may repeat what arrived already: keep only the new bytes.
      const skip = Math.max(0, this.#received[frame.stream] - frame.offset);
      if (skip >= frame.data.length) return;
      this.#received[frame.stream] = end;
      this.#push({ data: skip > 0 ? frame.data.subarray(skip) : frame.data, stream: frame.stream, end });
    } else if (frame.type === 'gap') {
      this.#received[frame.stream] = Math.max(this.#received[frame.stream], frame.to);
      this.#push({ data: new Uint8Array(0), stream: frame.stream, end: frame.to });
    } else if (frame.type === 'exit') {
      this.record = frame.exec;
      this.#finish();
    }
  }

  #push(chunk: Chunk): void {
    this.#queue.push(chunk);
    this.#poke();
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  #finish(): void {
    this.#resolveEnded();
    this.#poke();
  }

  /** Re-attaches once from the offsets reached; a second drop in a row (or a refusal) ends the session with UNAVAILABLE. */
  async #reattach(): Promise<void> {
    if (this.#reconnecting) {
      this.#failure = new CorralApiError('UNAVAILABLE', `the connection to terminal ${this.id} dropped twice in a row: attach again with sandbox.pty.attach('${this.id}', { from: ${JSON.stringify(this.#received)} })`, { details: { exec: this.id, ...this.#received } });
      return this.#finish();
    }
    this.#reconnecting = true;
    try {
      const ws = await attachSocket(this.#client, this.id, { ...this.#received }, this.#flowControl, {});
      if (this.#closedByUs) {
        ws.close(1000);
        return this.#finish();
      }
      this.#ws = ws;
      // Anything arriving on it means the connection works again: the next drop gets its own retry.
      this.#listen(ws, () => (this.#reconnecting = false));
      // What was read is acknowledged again on the new connection.
      this.#ack(true);
    } catch (e) {
      this.#failure = e;
      this.#finish();
    }
  }

  #ack(force = false): void {
    if (!this.#flowControl || this.#ws.readyState !== WS_OPEN) return;
    if (!force && this.#consumed - this.#acked < ACK_STEP && this.#queue.length > 0) return;
    if (!force && this.#consumed === this.#acked) return;
    this.#acked = this.#consumed;
    this.#ws.send(JSON.stringify({ type: 'ack', offset: this.#consumed }));
  }

  #send(message: object): void {
    if (this.#closedByUs) throw new CorralApiError('EXEC_STATE', `terminal ${this.id} is closed: attach again with sandbox.pty.attach('${this.id}')`, { details: { exec: this.id } });
    if (this.#ws.readyState !== WS_OPEN) throw new CorralApiError('UNAVAILABLE', `terminal ${this.id} is not connected${this.record !== null ? ' (it exited)' : ''}: nothing was sent`, { details: { exec: this.id } });
    this.#ws.send(JSON.stringify(message));
  }

  /**
   * Types into the terminal: a string as UTF-8, or bytes ('\r' is Enter, '\x03' is ^C). Sent in order
   * with resize() and end(); throws UNAVAILABLE when the connection is not open. The daemon's refusal
   * (the terminal exited, say) goes to onError.
   */
  write(data: string | Uint8Array): void {
    if (typeof data === 'string') {
      // Cut between UTF-16 code units of one character would send two halves of a surrogate pair: cut before it.
      for (let at = 0; at < data.length; ) {
        let end = Math.min(data.length, at + STRING_CHUNK);
        if (end < data.length && /[\ud800-\udbff]/.test(data[end - 1]!)) end--;
        this.#send({ type: 'stdin', data: data.slice(at, end), encoding: 'utf8' });
        at = end;
      }
      return;
    }
    const bytes = toBytes(data);
    for (let at = 0; at < bytes.length; at += BYTES_CHUNK) this.#send({ type: 'stdin', data: base64Encode(bytes.subarray(at, at + BYTES_CHUNK)), encoding: 'base64' });
  }

  /** Resizes the terminal (1..1000 each); the program gets SIGWINCH. Ordered with write(). */
  resize(cols: number, rows: number): void {
    checkSize(cols, rows);
    this.#send({ type: 'resize', cols, rows });
  }

  /** Types end-of-file (^D) at the terminal. */
  end(): void {
    this.#send({ type: 'eof' });
  }

  /** Sends a signal (a name such as 'TERM' or 'INT', or a number; default KILL): TERM and KILL end the whole tree. EXEC_STATE once it exited. */
  async kill(signal?: string | number, options: CallOptions = {}): Promise<ExecRecord> {
    return this.#client.json<ExecRecord>({ method: 'POST', path: `/v1/execs/${this.id}/kill`, json: signal === undefined ? {} : { signal } }, options);
  }

  /**
   * Resolves with the terminal's final record once it exited (`exitCode`, `result`). Past timeoutMs
   * it rejects with TIMEOUT and the terminal runs on; with check, an exit other than 0 throws
   * CommandExitError. When the connection is lost, it waits over HTTP instead.
   */
  async wait(options: WaitOptions = {}): Promise<ExecRecord> {
    const start = Date.now();
    if (this.record === null) await raceWait(this.#ended, this.id, options);
    let record = this.record;
    if (record === null) {
      const left = options.timeoutMs === undefined || options.timeoutMs <= 0 ? options.timeoutMs : Math.max(1, options.timeoutMs - (Date.now() - start));
      const call = options.signal ? { signal: options.signal } : {};
      const handle = new ExecHandle(this.#client, await this.#client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${this.id}` }, call));
      record = await handle.wait({ ...options, ...(left !== undefined ? { timeoutMs: left } : {}), check: false });
      this.record = record;
    }
    if (options.check && record.result !== null && commandFailed(record.result)) throw new CommandExitError(record.result);
    return record;
  }

  /**
   * Ends the session: kills the terminal's processes (KILL, the whole tree) when it still runs, unless
   * keepRunning, and closes the connection. Reading ends; idempotent.
   */
  async close(options: TerminalCloseOptions & CallOptions = {}): Promise<void> {
    const { keepRunning, ...call } = options;
    const wasClosed = this.#closedByUs;
    this.#closedByUs = true;
    try {
      if (!wasClosed && !keepRunning && this.record === null) {
        await this.kill('KILL', call).catch((e: unknown) => {
          // Ended already: nothing to kill.
          if (!(e instanceof CorralApiError && e.code === 'EXEC_STATE')) throw e;
        });
      }
    } finally {
      if (this.#ws.readyState <= WS_OPEN) this.#ws.close(1000, 'closed by the client');
      this.#finish();
    }
  }

  /**
   * What the terminal shows, as it comes: Uint8Array chunks (from where it was attached), until it
   * exits. Reading acknowledges the output (with flowControl). Iterate once; leaving the loop leaves
   * the terminal running. A connection lost for good rejects with UNAVAILABLE.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#iterating) throw new CorralApiError('INVALID_ARGUMENT', "a terminal's output can be read once: attach again with sandbox.pty.attach(id) for another reader", {});
    this.#iterating = true;
    for (;;) {
      const chunk = this.#queue.shift();
      if (chunk !== undefined) {
        if (chunk.data.length > 0) yield chunk.data;
        if (chunk.stream === 'stdout') this.#consumed = Math.max(this.#consumed, chunk.end);
        this.#ack();
        continue;
      }
      if (this.#failure !== null && !this.#closedByUs) throw this.#failure;
      if (this.record !== null || this.#closedByUs || this.#failure !== null) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}

/** Waits for `ended` under the wait's signal and timeout. */
function raceWait(ended: Promise<void>, id: string, options: WaitOptions): Promise<void> {
  const { signal, timeoutMs } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = (): void => done(() => reject(signal!.reason));
    const done = (then: () => void): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      then();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0) {
      timer = setTimeout(() => done(() => reject(new CorralApiError('TIMEOUT', `terminal ${id} still runs after ${timeoutMs} ms: wait again, or kill it`, { details: { exec: id, timeoutMs } }))), timeoutMs);
    }
    ended.then(() => done(resolve));
  });
}

/** Opens the attach WebSocket of an exec; a refusal the platform hides is explained by reading the exec over HTTP. */
function attachSocket(client: ApiClient, id: string, from: OutputOffsets, ack: boolean, call: CallOptions): Promise<WebSocketLike> {
  return client.webSocket(`/v1/execs/${encodeURIComponent(id)}/attach`, { stdout: from.stdout, stderr: from.stderr, ack: ack ? true : undefined }, call, async (reason) => {
    try {
      await client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${encodeURIComponent(id)}` }, call);
    } catch (e) {
      return e;
    }
    return new CorralApiError('UNAVAILABLE', `the attach WebSocket of exec ${id} at ${client.endpoint} failed (${reason}): check that the API key has the exec scope and that nothing between blocks WebSockets`, { details: { exec: id } });
  });
}

/** Terminals of a sandbox: create one, or attach to one by id. */
export class SandboxPty {
  readonly #client: ApiClient;
  readonly #sandboxId: string;

  constructor(client: ApiClient, sandboxId: string) {
    this.#client = client;
    this.#sandboxId = sandboxId;
  }

  /**
   * Starts a command on a new terminal of cols × rows (default: an interactive bash) and attaches
   * to it; resolves once attached. If attaching fails, the terminal is killed.
   */
  async create(options: PtyCreateOptions): Promise<Terminal> {
    checkSize(options?.cols, options?.rows);
    const cmd = options.cmd ?? ['bash', '-i'];
    const call = callOf(options);
    const body = {
      ...(typeof cmd === 'string' ? { shell: cmd } : { argv: [...cmd] }),
      env: { HISTFILE: '/dev/null', ...options.env },
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      timeoutMs: options.timeoutMs ?? DEFAULT_TERMINAL_TIMEOUT_MS,
      tty: { cols: options.cols, rows: options.rows },
      openStdin: true,
    };
    const created = await this.#client.json<ExecRecord>({ method: 'POST', path: `/v1/sandboxes/${this.#sandboxId}/execs`, json: body }, call);
    try {
      // Started before attaching: the daemon's flow control counts a reader of a running exec.
      await this.#client.json<ExecRecord>({ method: 'POST', path: `/v1/execs/${created.id}/start`, json: {} }, call);
      return await Terminal.open(this.#client, created, { stdout: 0, stderr: 0 }, options);
    } catch (e) {
      // Nobody holds it: do not leave it running for a day.
      await this.#client.json({ method: 'POST', path: `/v1/execs/${created.id}/kill`, json: {} }, {}).catch(() => undefined);
      throw e;
    }
  }

  /** Attaches to a running (or ended) terminal by its exec id: what it showed is replayed from `from`, then the live output. */
  async attach(id: string, options: PtyAttachOptions = {}): Promise<Terminal> {
    const call = callOf(options);
    const record = await this.#client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${encodeURIComponent(id)}` }, call);
    if (record.sandbox !== this.#sandboxId) throw new CorralApiError('EXEC_NOT_FOUND', `exec ${id} is not in sandbox ${this.#sandboxId}`, { status: 404, details: { exec: id, sandbox: this.#sandboxId } });
    return Terminal.open(this.#client, record, { stdout: options.from?.stdout ?? 0, stderr: options.from?.stderr ?? 0 }, options);
  }
}
