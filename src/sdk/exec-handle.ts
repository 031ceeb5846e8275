// Execs as client objects: ExecHandle for a background exec (or any exec by id: wait, kill, stdin,
// re-attach to its output from any offset, logs), and ExecStream for a streamed foreground exec.
import type { ExecRecord, ExecResultEnvelope } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions } from './api-client.ts';
import { decodeFrame, parseEventId, type ExecFrame, type OutputOffsets } from './exec-frames.ts';
import { logLines, type JsonLogOptions, type LogLine, type TextLogOptions } from './log-stream.ts';
import { toBytes } from './sdk-bytes.ts';
import { CommandExitError, commandFailed, CorralApiError, isCorralApiError } from './sdk-errors.ts';

/** The longest one server-side wait lasts; wait() chains them up to its own timeout. */
const WAIT_SLICE_MS = 30_000;
/** The most bytes one stdin request carries (the daemon's body limit is 1 MiB by default). */
const STDIN_CHUNK = 512 * 1024;

export interface WaitOptions {
  /** Cancels the wait (not the exec): it rejects with the signal's reason (default: none). */
  signal?: AbortSignal;
  /** Milliseconds to wait before failing with code TIMEOUT; the exec runs on (default: no limit). */
  timeoutMs?: number;
  /** Throw CommandExitError when the exec ended without succeeding (default false). */
  check?: boolean;
}

export interface OutputOptions {
  /** Byte offsets to start from, e.g. where an earlier reader stopped (default: 0 and 0, everything kept). */
  from?: Partial<OutputOffsets>;
  /** Keep reading until the exec ends (default true); false: only the output that exists now. */
  follow?: boolean;
  /** Stops reading: the iteration rejects with the signal's reason (default: none). */
  signal?: AbortSignal;
  /** Milliseconds to wait for the stream to start (default: the client's timeoutMs, 60000). */
  timeoutMs?: number;
}

/** Writes to an exec's stdin (an exec started with openStdin). Writes are sent in order. */
export class ExecStdin {
  private readonly client: ApiClient;
  private readonly id: () => Promise<string>;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(client: ApiClient, id: () => Promise<string>) {
    this.client = client;
    this.id = id;
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Sends bytes (a string as UTF-8); large writes go in 512 KiB requests. Resolves once the daemon took them. */
  write(data: string | Uint8Array, options: CallOptions = {}): Promise<void> {
    const bytes = toBytes(data);
    return this.enqueue(async () => {
      const id = await this.id();
      for (let at = 0; at < bytes.length; at += STDIN_CHUNK) {
        const chunk = bytes.subarray(at, at + STDIN_CHUNK);
        await this.client.empty({ method: 'POST', path: `/v1/execs/${id}/stdin`, body: chunk as Uint8Array<ArrayBuffer> }, options);
      }
    });
  }

  /** Closes stdin (EOF), after every write before it. */
  end(options: CallOptions = {}): Promise<void> {
    return this.enqueue(async () => {
      const id = await this.id();
      await this.client.empty({ method: 'POST', path: `/v1/execs/${id}/stdin`, query: { eof: true } }, options);
    });
  }
}

/** Frames of an exec's output route, re-attaching once per dropped connection with Last-Event-ID. */
async function* outputFrames(client: ApiClient, id: string, options: OutputOptions): AsyncGenerator<ExecFrame> {
  const at: OutputOffsets = { stdout: options.from?.stdout ?? 0, stderr: options.from?.stderr ?? 0 };
  const follow = options.follow ?? true;
  let reconnecting = false;
  const call = { ...(options.signal ? { signal: options.signal } : {}), ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) };
  for (;;) {
    const spec = reconnecting
      ? { method: 'GET' as const, path: `/v1/execs/${id}/output`, query: { follow }, headers: { 'last-event-id': `${at.stdout},${at.stderr}` } }
      : { method: 'GET' as const, path: `/v1/execs/${id}/output`, query: { stdout: at.stdout, stderr: at.stderr, follow } };
    try {
      for await (const event of client.sse(spec, call)) {
        const offsets = parseEventId(event.id);
        if (offsets) Object.assign(at, offsets);
        const frame = decodeFrame(event.data);
        reconnecting = false;
        if (frame === null) continue;
        yield frame;
        if (frame.type === 'exit') return;
      }
      // The stream ended without an exit frame: all there is now (follow false), else a cut connection.
      if (!follow) return;
      if (reconnecting) throw new CorralApiError('UNAVAILABLE', `the output stream of exec ${id} ended early twice in a row: read it again with output({ from: ${JSON.stringify(at)} })`, { details: { exec: id, ...at } });
    } catch (e) {
      if (!isCorralApiError(e, 'UNAVAILABLE') || reconnecting || options.signal?.aborted) throw e;
    }
    reconnecting = true;
  }
}

/**
 * An exec by id: a background exec, or any exec to inspect. Iterating it (`for await (const f of
 * handle)`) reads its output from the start and follows it to the exit frame.
 */
export class ExecHandle implements AsyncIterable<ExecFrame> {
  readonly id: string;
  /** The sbx_ id of the sandbox it runs in. */
  readonly sandboxId: string;
  /** The record as last seen (refreshed by info, wait and kill). */
  record: ExecRecord;
  /** Its stdin, when it was started with openStdin. */
  readonly stdin: ExecStdin;
  private readonly client: ApiClient;

  constructor(client: ApiClient, record: ExecRecord) {
    this.client = client;
    this.id = record.id;
    this.sandboxId = record.sandbox;
    this.record = record;
    this.stdin = new ExecStdin(client, async () => this.id);
  }

  /** running, completed, pending, denied, failed or lost, as last seen. */
  get state(): ExecRecord['state'] {
    return this.record.state;
  }

  /** The result envelope once it ended (as last seen), else null. */
  get result(): ExecResultEnvelope | null {
    return this.record.result;
  }

  /** The exec now: state, pid, exit code, output sizes, and its result once ended. */
  async info(options: CallOptions = {}): Promise<ExecRecord> {
    this.record = await this.client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${this.id}` }, options);
    return this.record;
  }

  /**
   * Waits until the exec ends and returns its final record (`result` holds the envelope; null for a
   * lost exec). Past timeoutMs it fails with TIMEOUT and the exec runs on; with check, an exec that
   * did not succeed throws CommandExitError.
   */
  async wait(options: WaitOptions = {}): Promise<ExecRecord> {
    const limit = options.timeoutMs;
    const deadline = limit === undefined || limit <= 0 ? Infinity : Date.now() + limit;
    for (;;) {
      const slice = Math.max(0, Math.floor(Math.min(WAIT_SLICE_MS, deadline - Date.now())));
      // The server answers within the slice; the client's own limit (0: none) is the margin on top.
      const call = { ...(options.signal ? { signal: options.signal } : {}), timeoutMs: this.client.timeoutMs > 0 ? slice + this.client.timeoutMs : 0 };
      const record = await this.client.json<ExecRecord>({ method: 'POST', path: `/v1/execs/${this.id}/wait`, json: { timeoutMs: slice } }, call);
      this.record = record;
      if (record.state !== 'running') {
        if (options.check) {
          if (record.result === null) throw new CorralApiError('EXEC_STATE', `exec ${this.id} was lost (the daemon stopped while it ran): it has no result; its output so far is kept`, { details: { exec: this.id, state: record.state } });
          if (commandFailed(record.result)) throw new CommandExitError(record.result);
        }
        return record;
      }
      if (Date.now() >= deadline) {
        throw new CorralApiError('TIMEOUT', `exec ${this.id} still runs after ${limit} ms: wait again, or kill it`, { details: { exec: this.id, timeoutMs: limit } });
      }
    }
  }

  /** Sends a signal (a name such as 'TERM' or 'SIGINT', or a number; default KILL): TERM and KILL end the whole tree. */
  async kill(signal?: string | number, options: CallOptions = {}): Promise<ExecRecord> {
    this.record = await this.client.json<ExecRecord>({ method: 'POST', path: `/v1/execs/${this.id}/kill`, json: signal === undefined ? {} : { signal } }, options);
    return this.record;
  }

  /**
   * The exec's frames: the kept output from `from` (replayed), then the live tail, ending with the
   * exit frame (with follow). A dropped connection is re-attached once with Last-Event-ID, so
   * nothing still kept is missed; breaking out of the loop closes the connection.
   */
  output(options: OutputOptions = {}): AsyncGenerator<ExecFrame> {
    return outputFrames(this.client, this.id, options);
  }

  /**
   * Its output as lines of both streams in time order: LogLine objects ({ stream, time, exec, text }),
   * or text with format 'text'; tail, since, until and which streams filter; with follow, the live
   * lines follow until it ends. The request goes out when the iteration starts.
   */
  logs(options?: JsonLogOptions): AsyncGenerator<LogLine>;
  logs(options: TextLogOptions): AsyncGenerator<string>;
  logs(options: JsonLogOptions | TextLogOptions = {}): AsyncGenerator<LogLine | string> {
    return logLines(this.client, `/v1/execs/${this.id}/logs`, options);
  }

  [Symbol.asyncIterator](): AsyncIterator<ExecFrame> {
    return this.output();
  }
}

/**
 * A foreground exec streamed as it runs (frames ending with exit). The request is sent when the
 * iteration starts, and it can be iterated once; leaving the loop (or cancel()) closes the stream
 * and so cancels the exec, as a disconnected client does.
 */
export class ExecStream implements AsyncIterable<ExecFrame> {
  /** The exec's id, once the first frame naming it arrived (started, or exit for a command that never ran). */
  id: string | null = null;
  /** The final record, once the exit frame arrived. */
  record: ExecRecord | null = null;
  /** Its stdin (with openStdin): writes wait until the id is known. */
  readonly stdin: ExecStdin;
  private readonly client: ApiClient;
  private readonly frames: AsyncGenerator<ExecFrame>;
  private readonly stop = new AbortController();
  private readonly userSignal: AbortSignal | undefined;
  private used = false;
  private readonly idKnown: Promise<string>;
  private resolveId!: (id: string) => void;
  private rejectId!: (e: unknown) => void;

  constructor(client: ApiClient, path: string, body: unknown, options: CallOptions) {
    this.client = client;
    this.userSignal = options.signal;
    // cancel() aborts the request, so it takes effect at once even while a read waits for a frame.
    const signal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal;
    this.frames = streamedFrames(client, path, body, { ...options, signal });
    this.idKnown = new Promise<string>((resolve, reject) => {
      this.resolveId = resolve;
      this.rejectId = reject;
    });
    this.idKnown.catch(() => undefined);
    this.stdin = new ExecStdin(client, () => this.idKnown);
  }

  /** A handle on the exec (kill, info) once its id is known. */
  async handle(options: CallOptions = {}): Promise<ExecHandle> {
    const id = await this.idKnown;
    return new ExecHandle(this.client, await this.client.json<ExecRecord>({ method: 'GET', path: `/v1/execs/${id}` }, options));
  }

  /** Closes the stream: the exec is cancelled, as for a client that disconnects; the iteration ends quietly. */
  async cancel(): Promise<void> {
    this.stop.abort();
    await this.frames.return(undefined);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ExecFrame> {
    if (this.used) throw new CorralApiError('INVALID_ARGUMENT', 'a streamed exec can be read once: run it again with sandbox.stream(), or use a background exec to re-attach', {});
    this.used = true;
    try {
      for await (const frame of this.frames) {
        if (frame.type === 'started' && this.id === null) {
          this.id = frame.exec;
          this.resolveId(frame.exec);
        } else if (frame.type === 'exit') {
          this.record = frame.exec;
          if (this.id === null) {
            this.id = frame.exec.id;
            this.resolveId(frame.exec.id);
          }
        }
        yield frame;
      }
    } catch (e) {
      if (this.stop.signal.aborted && !this.userSignal?.aborted) return;
      throw e;
    } finally {
      this.rejectId(new CorralApiError('EXEC_STATE', 'the streamed exec ended before it started: it has no stdin', {}));
    }
  }
}

/** Frames of one streamed POST (no re-attach: the daemon ends a streamed exec with its client). */
async function* streamedFrames(client: ApiClient, path: string, body: unknown, options: CallOptions): AsyncGenerator<ExecFrame> {
  for await (const event of client.sse({ method: 'POST', path, json: body }, options)) {
    const frame = decodeFrame(event.data);
    if (frame === null) continue;
    yield frame;
    if (frame.type === 'exit') return;
  }
}
