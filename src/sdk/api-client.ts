// The SDK's HTTP layer: builds requests (base URL, API key, query, JSON or raw bodies), applies the
// per-call timeout and AbortSignal, and turns every failure into a CorralApiError (the daemon's error
// envelope, or UNAVAILABLE / TIMEOUT / BAD_RESPONSE on the client's side). Only web-standard globals.
import { CorralApiError } from './sdk-errors.ts';
import { readSse, type SseEvent } from './sse-reader.ts';
import { openWebSocket, type WebSocketFactory, type WebSocketLike } from './web-socket.ts';

/**
 * What sends a request: `fetch` itself, or a transport with the same shape (the Node subpath's Unix
 * socket transport). `endpoint` names where requests go in error messages; `close` releases the
 * transport's connections (corral.close() calls it).
 */
export interface FetchLike {
  (url: string, init: RequestInit): Promise<Response>;
  endpoint?: string;
  close?(): void;
}

/** Options every call takes. */
export interface CallOptions {
  /** Cancels the call: it rejects with the signal's reason, as fetch does (default: none). */
  signal?: AbortSignal;
  /**
   * Milliseconds the call may take before it fails with code TIMEOUT; 0 turns the limit off
   * (default: the client's timeoutMs, 60000). For a stream (exec output, a streamed exec, a
   * download, a watch) it bounds the wait for the answer to start, not the stream's length.
   */
  timeoutMs?: number;
}

/** A request body fetch takes (the platform's BodyInit). */
export type RequestBody = NonNullable<RequestInit['body']>;

export type QueryValue = string | number | boolean | undefined | null;

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD';
  path: string;
  /** Query parameters; undefined ones are left out, an array repeats the parameter. */
  query?: Record<string, QueryValue | readonly QueryValue[]>;
  /** A JSON body (sent with Content-Type: application/json). */
  json?: unknown;
  /** A raw body and its type (default application/octet-stream). */
  body?: RequestBody;
  contentType?: string;
  headers?: Record<string, string>;
  /** Statuses besides 2xx whose bodies are answers, not errors (GET /v1/health answers 503). */
  okStatuses?: number[];
}

export interface ApiClientOptions {
  url: string;
  apiKey?: string;
  fetch: FetchLike;
  timeoutMs: number;
  /** What opens WebSockets (terminals); null where the platform has none. */
  webSocket?: WebSocketFactory | null;
}

/** The longest delay setTimeout takes. */
const MAX_TIMER_MS = 2_147_483_647;

/** One call's cancellation: the caller's signal and the timeout, folded into one controller. */
export class CallScope {
  readonly controller = new AbortController();
  private readonly user: AbortSignal | undefined;
  private readonly onUserAbort: () => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timedOut = false;
  private readonly timeoutMs: number;
  private readonly endpoint: string;

  constructor(options: CallOptions, defaultTimeoutMs: number, endpoint: string) {
    this.user = options.signal;
    this.endpoint = endpoint;
    this.timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    this.onUserAbort = () => this.controller.abort(this.user?.reason);
    if (this.user?.aborted) this.controller.abort(this.user.reason);
    else this.user?.addEventListener('abort', this.onUserAbort, { once: true });
    if (this.timeoutMs > 0 && Number.isFinite(this.timeoutMs)) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.controller.abort(new CorralApiError('TIMEOUT', `no answer from the Corral daemon at ${this.endpoint} within ${this.timeoutMs} ms: raise timeoutMs, or check the daemon (corral daemon status)`, { details: { timeoutMs: this.timeoutMs } }));
      }, Math.min(this.timeoutMs, MAX_TIMER_MS));
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The answer has started (a stream): from now on only the caller's signal ends it. */
  stopTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The call is over: drops the timer and the listener on the caller's signal. */
  release(): void {
    this.stopTimer();
    this.user?.removeEventListener('abort', this.onUserAbort);
  }

  /** What to throw for `e`, raised while `doing` (a phrase such as 'reading the answer'). */
  fail(e: unknown, doing: string): unknown {
    if (this.user?.aborted) return this.user.reason;
    if (this.timedOut) return this.controller.signal.reason;
    if (e instanceof CorralApiError) return e;
    const message = e instanceof Error ? messageOf(e) : String(e);
    return new CorralApiError('UNAVAILABLE', `cannot reach the Corral daemon at ${this.endpoint} (${doing}): ${message}. Is it running? (corral daemon status)`, { cause: e });
  }
}

/** An error's message with its causes (fetch says only "fetch failed"; the reason is in the cause). */
function messageOf(e: Error): string {
  const parts = [e.message];
  let cause = (e as { cause?: unknown }).cause;
  for (let i = 0; i < 3 && cause instanceof Error; i++) {
    if (!parts.includes(cause.message)) parts.push(cause.message);
    cause = (cause as { cause?: unknown }).cause;
  }
  return parts.join(': ');
}

/** The error a non-2xx answer stands for: its envelope as a CorralApiError, or BAD_RESPONSE. */
export async function errorFromResponse(res: Response): Promise<CorralApiError> {
  const requestId = res.headers.get('x-request-id');
  let text = '';
  try {
    text = await res.text();
  } catch {
    // A body cut short: what we have of the status is still worth reporting.
  }
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown; requestId?: unknown } };
    const e = body.error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      const details = e.details && typeof e.details === 'object' && !Array.isArray(e.details) ? (e.details as Record<string, unknown>) : {};
      return new CorralApiError(e.code, e.message, { status: res.status, details, requestId: typeof e.requestId === 'string' ? e.requestId : requestId });
    }
  } catch {
    // Not JSON: below.
  }
  return new CorralApiError('BAD_RESPONSE', `the daemon answered HTTP ${res.status} without an error envelope: is this URL a Corral daemon? (${text.slice(0, 120).trim() || 'empty body'})`, {
    status: res.status,
    requestId,
    details: { status: res.status },
  });
}

/** A response whose body streams; `scope` must be released when the stream is done with. */
export interface OpenResponse {
  response: Response;
  scope: CallScope;
}

export class ApiClient {
  readonly url: string;
  readonly timeoutMs: number;
  readonly endpoint: string;
  private readonly fetchFn: FetchLike;
  private readonly apiKey: string | undefined;
  private readonly webSocketFactory: WebSocketFactory | null;

  constructor(options: ApiClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.fetchFn = options.fetch;
    this.apiKey = options.apiKey;
    this.webSocketFactory = options.webSocket ?? null;
    this.timeoutMs = options.timeoutMs;
    this.endpoint = options.fetch.endpoint ?? this.url;
  }

  private urlOf(spec: RequestSpec): string {
    let url = this.url + spec.path;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(spec.query ?? {})) for (const one of Array.isArray(v) ? v : [v]) if (one !== undefined && one !== null) params.append(k, String(one));
    const q = params.toString();
    if (q) url += `?${q}`;
    return url;
  }

  /** Sends the request and checks the status; on success the scope is still live (the body is unread). */
  async open(spec: RequestSpec, options: CallOptions = {}, defaultTimeoutMs = this.timeoutMs): Promise<OpenResponse> {
    const scope = new CallScope(options, defaultTimeoutMs, this.endpoint);
    const headers: Record<string, string> = { ...spec.headers };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    let body: RequestBody | undefined;
    if (spec.json !== undefined) {
      body = JSON.stringify(spec.json);
      headers['content-type'] = 'application/json';
    } else if (spec.body !== undefined) {
      body = spec.body;
      headers['content-type'] = spec.contentType ?? 'application/octet-stream';
    }
    const init: RequestInit & { duplex?: 'half' } = { method: spec.method, headers, signal: scope.signal };
    if (body !== undefined) init.body = body;
    // A streamed request body needs half duplex (fetch refuses it otherwise).
    if (body instanceof ReadableStream) init.duplex = 'half';
    let response: Response;
    try {
      if (scope.signal.aborted) throw scope.signal.reason;
      response = await this.fetchFn(this.urlOf(spec), init);
    } catch (e) {
      scope.release();
      throw scope.fail(e, `${spec.method} ${spec.path}`);
    }
    if (!response.ok && !spec.okStatuses?.includes(response.status)) {
      try {
        throw await errorFromResponse(response);
      } catch (e) {
        throw scope.fail(e, 'reading the error');
      } finally {
        scope.release();
      }
    }
    return { response, scope };
  }

  /**
   * Opens the daemon's WebSocket at `path` (subprotocol corral.v1, the key as the factory sends it);
   * resolves once open. The call's timeout and signal bound the opening. `refused(reason)` says what
   * to reject with when the platform hides why the upgrade failed.
   */
  webSocket(path: string, query: RequestSpec['query'], options: CallOptions, refused: (reason: string) => Promise<unknown>): Promise<WebSocketLike> {
    const factory = this.webSocketFactory;
    if (!factory) return Promise.reject(new CorralApiError('INVALID_ARGUMENT', 'this platform has no global WebSocket: pass a factory as the webSocket option of Corral.connect', {}));
    const url = this.urlOf({ method: 'GET', path, ...(query ? { query } : {}) }).replace(/^http/i, 'ws');
    return openWebSocket(factory, url, { protocols: ['corral.v1'], ...(this.apiKey !== undefined ? { apiKey: this.apiKey } : {}) }, new CallScope(options, this.timeoutMs, this.endpoint), this.endpoint, refused);
  }

  /** A call answered with JSON. */
  async json<T>(spec: RequestSpec, options: CallOptions = {}, defaultTimeoutMs = this.timeoutMs): Promise<T> {
    const { response, scope } = await this.open(spec, options, defaultTimeoutMs);
    try {
      const text = await response.text();
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new CorralApiError('BAD_RESPONSE', `the daemon's answer to ${spec.method} ${spec.path} is not JSON: is this URL a Corral daemon?`, { status: response.status, requestId: response.headers.get('x-request-id') });
      }
      // An accepted non-2xx status (okStatuses) may still carry an error envelope.
      if (!response.ok && typeof value === 'object' && value !== null && 'error' in value) throw await errorFromResponse(new Response(text, { status: response.status, headers: response.headers }));
      return value as T;
    } catch (e) {
      throw scope.fail(e, 'reading the answer');
    } finally {
      scope.release();
    }
  }

  /** A call answered with bytes. */
  async bytes(spec: RequestSpec, options: CallOptions = {}): Promise<Uint8Array> {
    const { response, scope } = await this.open(spec, options);
    try {
      return new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      throw scope.fail(e, 'reading the answer');
    } finally {
      scope.release();
    }
  }

  /** A call answered with no body (204). */
  async empty(spec: RequestSpec, options: CallOptions = {}): Promise<void> {
    const { response, scope } = await this.open(spec, options);
    try {
      await response.arrayBuffer();
    } catch (e) {
      throw scope.fail(e, 'reading the answer');
    } finally {
      scope.release();
    }
  }

  /** A call answered with a byte stream: the timeout ends once the answer starts; the caller's signal still cancels it. */
  async stream(spec: RequestSpec, options: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const { response, scope } = await this.open(spec, options);
    scope.stopTimer();
    const body = response.body;
    if (!body) {
      scope.release();
      return new ReadableStream({ start: (c) => c.close() });
    }
    const reader = body.getReader();
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          try {
            const { done, value } = await reader.read();
            if (done) {
              scope.release();
              controller.close();
            } else controller.enqueue(value);
          } catch (e) {
            scope.release();
            controller.error(scope.fail(e, 'reading the stream'));
          }
        },
        async cancel(reason) {
          scope.release();
          await reader.cancel(reason).catch(() => undefined);
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** A call answered with Server-Sent Events; returning early closes the connection. Errors come mapped. */
  async *sse(spec: RequestSpec, options: CallOptions = {}): AsyncGenerator<SseEvent> {
    const { response, scope } = await this.open({ ...spec, headers: { accept: 'text/event-stream', ...spec.headers } }, options);
    scope.stopTimer();
    try {
      if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
        await response.body?.cancel().catch(() => undefined);
        throw new CorralApiError('BAD_RESPONSE', `the daemon's answer to ${spec.method} ${spec.path} is not an event stream: is this URL a Corral daemon?`, { status: response.status, requestId: response.headers.get('x-request-id') });
      }
      yield* readSse(response.body);
    } catch (e) {
      throw scope.fail(e, 'reading the event stream');
    } finally {
      scope.release();
    }
  }
}
