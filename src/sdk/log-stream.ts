// Logs of processes and execs as async iterables of lines: `format=json` NDJSON parsed into LogLine
// objects (the default), or the text form, docker-logs style. Both streams merge in time order.
import type { ApiClient, CallOptions, RequestSpec } from './api-client.ts';
import type { OutputStream } from './exec-frames.ts';
import { CorralApiError } from './sdk-errors.ts';

/** One line of output. */
export interface LogLine {
  stream: OutputStream;
  /** When its first byte arrived: RFC 3339 with nanoseconds (2026-11-30T10:00:00.123456000Z). */
  time: string;
  /** The exec (run) it came from: a process's runs each have their own. */
  exec: string;
  /** The line without its newline (invalid UTF-8 shows as U+FFFD). */
  text: string;
}

/** A time: a Date, RFC 3339 text, or a number of milliseconds since the epoch (as Date.now() gives). */
export type LogTime = Date | string | number;

export interface LogOptions extends CallOptions {
  /** Only the last N lines of what the other filters keep, or 'all' (default 'all'). */
  tail?: number | 'all';
  /** Only lines that arrived at or after this time (default: from the first kept line). */
  since?: LogTime;
  /** Only lines that arrived before this time (default: no limit). */
  until?: LogTime;
  /** Include stdout (default true). */
  stdout?: boolean;
  /** Include stderr (default true). */
  stderr?: boolean;
  /** Keep reading the live output until the exec (the process's current run) ends or the loop is left (default false). */
  follow?: boolean;
}

export interface TextLogOptions extends LogOptions {
  /** Lines as text instead of LogLine objects (required here; the default is 'json'). */
  format: 'text';
  /** Start each line with its time, RFC 3339 with nanoseconds, and a space (default false). */
  timestamps?: boolean;
}

export interface JsonLogOptions extends LogOptions {
  /** LogLine objects (the default). */
  format?: 'json';
}

function timeParam(name: string, t: LogTime | undefined): string | undefined {
  if (t === undefined) return undefined;
  if (t instanceof Date) {
    if (Number.isNaN(t.getTime())) throw new CorralApiError('INVALID_ARGUMENT', `${name} is an invalid Date`, {});
    return t.toISOString();
  }
  if (typeof t === 'number') {
    if (!Number.isFinite(t) || t < 0) throw new CorralApiError('INVALID_ARGUMENT', `${name} must be milliseconds since the epoch (0 or more), got ${t}`, {});
    return (t / 1000).toFixed(3);
  }
  return t;
}

/** The query of a logs route. */
export function logQuery(options: TextLogOptions | JsonLogOptions): RequestSpec['query'] {
  const text = options.format === 'text';
  return {
    tail: options.tail,
    since: timeParam('since', options.since),
    until: timeParam('until', options.until),
    stdout: options.stdout,
    stderr: options.stderr,
    follow: options.follow,
    timestamps: text ? (options as TextLogOptions).timestamps : undefined,
    format: text ? 'text' : 'json',
  };
}

/** Lines of a byte stream (LF-separated; a last line without LF is a line too). */
async function* readLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        pending += decoder.decode();
        if (pending !== '') yield pending;
        return;
      }
      pending += decoder.decode(value, { stream: true });
      let start = 0;
      let nl: number;
      while ((nl = pending.indexOf('\n', start)) >= 0) {
        const line = pending.slice(start, nl);
        start = nl + 1;
        yield line;
      }
      pending = pending.slice(start);
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** Lines of a logs route: the request goes out when the iteration starts; leaving the loop closes it. */
export async function* logLines(client: ApiClient, path: string, options: TextLogOptions | JsonLogOptions): AsyncGenerator<LogLine | string> {
  const query = logQuery(options);
  const call: CallOptions = { ...(options.signal ? { signal: options.signal } : {}), ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) };
  const body = await client.stream({ method: 'GET', path, query }, call);
  for await (const line of readLines(body)) {
    if (options.format === 'text') {
      yield line;
      continue;
    }
    if (line === '') continue;
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      throw new CorralApiError('BAD_RESPONSE', `a line of ${path} is not JSON: is this URL a Corral daemon?`, {});
    }
    yield parsed;
  }
}
