// The daemon's events (sandboxes, execs, approvals) as an async iterable over Server-Sent Events. The
// request goes out at once (`ready` resolves once the daemon subscribed it, so nothing after that is
// missed); a dropped connection is re-attached once with Last-Event-ID, and the daemon's `reset`
// (events lost in between) is handed on as an event of its own.
import type { CorralEventWire } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions, OpenResponse, RequestSpec } from './api-client.ts';
import { CorralApiError, isCorralApiError } from './sdk-errors.ts';
import { readSse } from './sse-reader.ts';

/** One event of the daemon: `seq` grows by one per event (resume after it with `after`). */
export type CorralEvent = CorralEventWire;
export type CorralEventType = CorralEventWire['type'];

/**
 * Some events after the requested seq are lost (dropped from the daemon's ring of recent events, or
 * the daemon restarted); what is still kept follows. `seq` is where the stream resumes.
 */
export interface EventReset {
  type: 'reset';
  seq: number;
  data: {
    /** The seq the stream asked to resume after. */
    requested: number;
    /** The oldest event still kept (it comes next), or null when none is. */
    oldestSeq: number | null;
    /** The daemon's latest seq. */
    lastSeq: number;
    /** Why the stream cannot resume exactly. */
    reason: string;
  };
}

/** What an event stream gives: events, and a reset where some were lost. */
export type StreamEvent = CorralEvent | EventReset;

export interface EventStreamOptions extends CallOptions {
  /** Only these event types (default: all). A reset comes whatever the filter. */
  types?: readonly CorralEventType[];
  /** Replay the kept events after this seq first (0: every kept event) (default: only events from now on). */
  after?: number;
}

export interface CorralEventsOptions extends EventStreamOptions {
  /** Only this sandbox's events (sbx_…); the stream ends after its destroyed event (default: every sandbox the caller may see). */
  sandbox?: string;
}

/**
 * A stream of events, oldest first: `for await (const e of stream)`. Iterate once; leaving the loop
 * or close() ends it. A sandbox's stream ends after its `destroyed` event.
 */
export class EventStream implements AsyncIterable<StreamEvent> {
  /** Resolves once the daemon subscribed the stream: every later event will come. Rejects as the first request does. */
  readonly ready: Promise<void>;
  /** The seq of the last event read (where a reconnect resumes), or null before the first. */
  lastSeq: number | null = null;
  readonly #client: ApiClient;
  readonly #spec: RequestSpec;
  readonly #call: CallOptions;
  readonly #perSandbox: boolean;
  readonly #stop = new AbortController();
  readonly #userSignal: AbortSignal | undefined;
  readonly #first: Promise<OpenResponse>;
  #used = false;

  /** @internal Use corral.events() or sandbox.events(). */
  constructor(client: ApiClient, path: string, options: CorralEventsOptions, perSandbox: boolean) {
    this.#client = client;
    this.#perSandbox = perSandbox;
    this.#userSignal = options.signal;
    const after = options.after;
    if (after !== undefined && !(Number.isSafeInteger(after) && after >= 0)) throw new CorralApiError('INVALID_ARGUMENT', `after must be an event seq (a whole number, 0 or more), got ${String(after).slice(0, 40)}`, {});
    this.#spec = { method: 'GET', path, query: { sandbox: options.sandbox, types: options.types?.length ? options.types.join(',') : undefined, after } };
    const signal = options.signal ? AbortSignal.any([options.signal, this.#stop.signal]) : this.#stop.signal;
    this.#call = { signal, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) };
    this.#first = this.#connect(this.#spec);
    this.ready = this.#first.then(() => undefined);
    // Whoever never awaits ready nor iterates must not see an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  async #connect(spec: RequestSpec): Promise<OpenResponse> {
    const opened = await this.#client.open({ ...spec, headers: { accept: 'text/event-stream', ...spec.headers } }, this.#call);
    opened.scope.stopTimer();
    const { response, scope } = opened;
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
      scope.release();
      await response.body?.cancel().catch(() => undefined);
      throw new CorralApiError('BAD_RESPONSE', `the daemon's answer to GET ${spec.path} is not an event stream: is this URL a Corral daemon?`, { status: response.status, requestId: response.headers.get('x-request-id') });
    }
    return opened;
  }

  /** Ends the stream: the connection closes, the iteration ends quietly. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#first.then(
      (o) => o.response.body?.cancel().catch(() => undefined),
      () => undefined,
    );
  }

  #stopped(): boolean {
    return this.#stop.signal.aborted && !this.#userSignal?.aborted;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StreamEvent> {
    if (this.#used) throw new CorralApiError('INVALID_ARGUMENT', 'an event stream can be read once: open another with events({ after: stream.lastSeq })', {});
    this.#used = true;
    let conn: OpenResponse;
    try {
      conn = await this.#first;
    } catch (e) {
      if (this.#stopped()) return;
      throw e;
    }
    let reconnecting = false;
    for (;;) {
      try {
        for await (const sse of readSse(conn.response.body!)) {
          reconnecting = false;
          const seq = sse.id !== null && /^[0-9]{1,15}$/.test(sse.id) ? Number(sse.id) : null;
          if (seq !== null) this.lastSeq = seq;
          let data: unknown;
          try {
            data = JSON.parse(sse.data);
          } catch {
            throw new CorralApiError('BAD_RESPONSE', `an event of GET ${this.#spec.path} is not JSON: is this URL a Corral daemon?`, {});
          }
          if (sse.event === 'reset') {
            yield { type: 'reset', seq: seq ?? 0, data: data as EventReset['data'] };
            continue;
          }
          const event = data as CorralEvent;
          yield event;
          if (this.#perSandbox && event.type === 'destroyed') return;
        }
      } catch (e) {
        if (this.#stopped()) return;
        const err = conn.scope.fail(e, 'reading the event stream');
        if (!isCorralApiError(err, 'UNAVAILABLE') || reconnecting) throw err;
      } finally {
        conn.scope.release();
      }
      if (this.#stopped()) return;
      if (reconnecting) {
        // A sandbox's stream that ends at once again: the sandbox is gone (its destroyed event may be filtered out).
        if (this.#perSandbox) return;
        throw new CorralApiError('UNAVAILABLE', `the event stream ${this.#spec.path} ended twice in a row: open it again with after: ${this.lastSeq}`, { details: { lastSeq: this.lastSeq } });
      }
      reconnecting = true;
      // Last-Event-ID wins over ?after= at the daemon: the stream resumes after the last event read.
      const resume: RequestSpec = this.lastSeq === null ? this.#spec : { ...this.#spec, headers: { 'last-event-id': String(this.lastSeq) } };
      try {
        conn = await this.#connect(resume);
      } catch (e) {
        if (this.#stopped()) return;
        throw e;
      }
    }
  }
}
