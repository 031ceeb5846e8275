// Logs of execs and processes: their kept output as lines with the time each arrived, both streams
// merged in time order, with docker-logs style options (tail, since, until, timestamps, which
// streams) and follow (the live tail of a running exec). The bytes come from the ExecOutputStore,
// whose per-stream bound is the rotation: a chatty process cannot fill the disk.
import { CorralError } from '../protocol/errors.ts';
import type { ExecOutputStore, OutputStream } from './exec-output-store.ts';
import type { ExecFrame } from './exec-sessions.ts';

export interface LogLine {
  stream: OutputStream;
  /** When its first byte arrived, µs since the epoch. */
  atUs: number;
  /** The line without its newline (the last line of an ended stream may have none). */
  text: string;
  /** The exec it came from. */
  exec: string;
}

export interface LogOptions {
  /** Only the last N lines (of what since/until keep). */
  tail?: number;
  /** ms since the epoch, inclusive. */
  since?: number;
  /** ms since the epoch, exclusive. */
  until?: number;
  stdout?: boolean;
  stderr?: boolean;
}

/** Splits chunks of one stream into lines; a line's time is that of the chunk its first byte came in. */
export class LineSplitter {
  private partial = '';
  private partialAt = 0;
  private readonly stream: OutputStream;
  private readonly exec: string;

  constructor(exec: string, stream: OutputStream) {
    this.exec = exec;
    this.stream = stream;
  }

  push(data: Buffer, atUs: number): LogLine[] {
    const text = data.toString('utf8');
    const out: LogLine[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      const at = this.partial === '' ? atUs : this.partialAt;
      out.push({ stream: this.stream, atUs: at, text: this.partial + text.slice(start, nl), exec: this.exec });
      this.partial = '';
      start = nl + 1;
    }
    if (start < text.length) {
      if (this.partial === '') this.partialAt = atUs;
      this.partial += text.slice(start);
    }
    return out;
  }

  /** The unterminated last line, if any. */
  end(): LogLine[] {
    if (this.partial === '') return [];
    const line: LogLine = { stream: this.stream, atUs: this.partialAt, text: this.partial, exec: this.exec };
    this.partial = '';
    return [line];
  }
}

export function checkLogOptions(o: LogOptions): void {
  if (o.tail !== undefined && !(Number.isSafeInteger(o.tail) && o.tail >= 0)) throw new CorralError('INVALID_ARGUMENT', 'tail must be a whole number of lines, 0 or more', { tail: o.tail });
  for (const k of ['since', 'until'] as const) {
    const v = o[k];
    if (v !== undefined && !Number.isFinite(v)) throw new CorralError('INVALID_ARGUMENT', `${k} must be a time (RFC 3339, or seconds since the epoch)`, {});
  }
  if (o.stdout === false && o.stderr === false) throw new CorralError('INVALID_ARGUMENT', 'ask for stdout, stderr or both', {});
}

/** The kept lines of the given execs (oldest first), filtered as asked; `ends` is where each stream of the last exec stopped. */
export function storedLines(output: ExecOutputStore, execIds: readonly string[], o: LogOptions): { lines: LogLine[]; ends: Record<OutputStream, number> } {
  const streams = (['stdout', 'stderr'] as const).filter((s) => o[s] !== false);
  let lines: LogLine[] = [];
  let ends = { stdout: 0, stderr: 0 };
  for (const exec of execIds) {
    ends = { stdout: 0, stderr: 0 };
    for (const stream of streams) {
      const split = new LineSplitter(exec, stream);
      let offset = 0;
      for (;;) {
        const page = output.read(exec, stream, offset);
        if (page.start > offset) offset = page.start;
        for (const c of page.chunks) {
          lines.push(...split.push(c.data, c.atUs));
          offset = c.offset + c.data.length;
        }
        if (page.chunks.length === 0 || offset >= page.end) break;
      }
      lines.push(...split.end());
      ends[stream] = offset;
    }
  }
  lines.sort((a, b) => a.atUs - b.atUs);
  if (o.since !== undefined) lines = lines.filter((l) => l.atUs >= o.since! * 1000);
  if (o.until !== undefined) lines = lines.filter((l) => l.atUs < o.until! * 1000);
  if (o.tail !== undefined) lines = o.tail === 0 ? [] : lines.slice(-o.tail);
  return { lines, ends };
}

/** Live lines from an exec's frames (after the stored part); ends with the exec or the frames. */
export async function* liveLines(exec: string, frames: AsyncIterable<ExecFrame>, o: LogOptions): AsyncGenerator<LogLine> {
  const splitters = { stdout: new LineSplitter(exec, 'stdout'), stderr: new LineSplitter(exec, 'stderr') };
  for await (const f of frames) {
    if (f.type !== 'output' || o[f.stream] === false) continue;
    for (const l of splitters[f.stream].push(f.data, f.atUs)) if (o.until === undefined || l.atUs < o.until * 1000) yield l;
  }
  for (const s of ['stdout', 'stderr'] as const) if (o[s] !== false) yield* splitters[s].end();
}

/** RFC 3339 with nanoseconds (from µs: the last three digits are 0). */
export function rfc3339Nano(atUs: number): string {
  const ms = Math.floor(atUs / 1000);
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 19)}.${String(atUs % 1_000_000).padStart(6, '0')}000Z`;
}
