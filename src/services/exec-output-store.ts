// The output of execs, kept durably with byte offsets so a client can re-attach from any offset,
// and a daemon that died leaves the output captured so far (up to the last flush) on disk.
//
// Writes are batched: chunks wait in memory up to flushMs or flushBytes, then go to SQLite in one
// transaction (one row per chunk costs a commit each at high output rates). Readers see the unflushed
// tail too. Each stream keeps at most maxBytes: older chunks are dropped, and a read from before the
// oldest kept byte says so (a gap) instead of pretending.
import type { Database } from '../store/database.ts';

export type OutputStream = 'stdout' | 'stderr';
const STREAM_CODE: Record<OutputStream, 1 | 2> = { stdout: 1, stderr: 2 };

export interface OutputChunk {
  stream: OutputStream;
  /** The byte offset of data[0] within its stream. */
  offset: number;
  /** When it arrived, µs since the epoch. */
  atUs: number;
  data: Buffer;
}

export interface OutputStoreOptions {
  /** Bytes kept per stream of one exec (default 16 MiB). */
  maxBytes?: number;
  flushMs?: number;
  flushBytes?: number;
  /** µs since the epoch (tests pass a fake). */
  nowUs?: () => number;
}

interface Pending {
  chunks: OutputChunk[];
  bytes: number;
  timer: NodeJS.Timeout | null;
  /** Total bytes written per stream (the next chunk's offset). */
  end: Record<OutputStream, number>;
}

export const DEFAULT_OUTPUT_KEPT = 16 * 1024 * 1024;
/** Rows one read takes at most (each chunk is a pipe read: 64 KiB or less, or a flushed batch). */
const PAGE_ROWS = 64;
/** Chunks of one stream that arrived within this many µs of the first of a run are stored as one row. */
const COALESCE_US = 1000;

/**
 * Contiguous chunks of a stream that arrived within COALESCE_US of each other, as one: a fast
 * producer's 64 KiB pipe reads become fewer, larger rows; output at a human pace keeps each chunk's time.
 */
function coalesce(chunks: OutputChunk[]): OutputChunk[] {
  const out: OutputChunk[] = [];
  type Run = { first: OutputChunk; parts: Buffer[]; end: number; index: number };
  const open: Partial<Record<OutputStream, Run>> = {};
  const close = (run: Run | undefined): void => {
    if (run && run.parts.length > 1) out[run.index] = { ...run.first, data: Buffer.concat(run.parts) };
  };
  for (const c of chunks) {
    const run = open[c.stream];
    if (run && run.end === c.offset && c.atUs - run.first.atUs < COALESCE_US) {
      run.parts.push(c.data);
      run.end += c.data.length;
      continue;
    }
    close(run);
    open[c.stream] = { first: c, parts: [c.data], end: c.offset + c.data.length, index: out.length };
    out.push(c);
  }
  close(open.stdout);
  close(open.stderr);
  return out;
}

/** Flushed output kept in memory per stream of a running exec, for readers that follow it live. */
const RECENT_BYTES = 4 * 1024 * 1024;

export class ExecOutputStore {
  private readonly db: Database;
  private readonly maxBytes: number;
  private readonly flushMs: number;
  private readonly flushBytes: number;
  private readonly nowUs: () => number;
  private readonly pending = new Map<string, Pending>();
  /** The latest flushed chunks of running execs, so readers that keep up never read them back from SQLite. */
  private readonly recent = new Map<string, Record<OutputStream, OutputChunk[]>>();
  /** The ends of running execs' streams as of their last flush. */
  private readonly known = new Map<string, Record<OutputStream, number>>();

  constructor(db: Database, options: OutputStoreOptions = {}) {
    this.db = db;
    this.maxBytes = options.maxBytes ?? DEFAULT_OUTPUT_KEPT;
    this.flushMs = options.flushMs ?? 50;
    this.flushBytes = options.flushBytes ?? 256 * 1024;
    this.nowUs = options.nowUs ?? (() => Math.floor((performance.timeOrigin + performance.now()) * 1000));
  }

  /** Appends bytes to an exec's stream; returns the chunk with its offset. */
  append(execId: string, stream: OutputStream, data: Buffer): OutputChunk {
    let p = this.pending.get(execId);
    if (!p) {
      // A running exec's ends are known from its last flush: the database is asked only once.
      p = { chunks: [], bytes: 0, timer: null, end: this.known.get(execId) ?? this.storedEnds(execId) };
      this.pending.set(execId, p);
    }
    const chunk: OutputChunk = { stream, offset: p.end[stream], atUs: this.nowUs(), data };
    p.end[stream] += data.length;
    p.chunks.push(chunk);
    p.bytes += data.length;
    if (p.bytes >= this.flushBytes) this.flush(execId);
    else p.timer ??= setTimeout(() => this.flush(execId), this.flushMs).unref();
    return chunk;
  }

  /** Writes an exec's waiting chunks now (and drops what is past the bound). */
  flush(execId: string): void {
    const p = this.pending.get(execId);
    if (!p) return;
    if (p.timer) clearTimeout(p.timer);
    this.pending.delete(execId);
    if (p.chunks.length === 0) return;
    this.known.set(execId, { ...p.end });
    this.db.transaction(() => {
      for (const c of coalesce(p.chunks)) this.db.run('INSERT INTO exec_output(exec_id, stream, offset, at_us, size, data) VALUES (?, ?, ?, ?, ?, ?)', execId, STREAM_CODE[c.stream], c.offset, c.atUs, c.data.length, c.data);
      for (const stream of ['stdout', 'stderr'] as const) {
        const keepFrom = p.end[stream] - this.maxBytes;
        // A chunk goes only when all of it is older than the bound (the kept window may start mid-chunk).
        if (keepFrom > 0) this.db.run('DELETE FROM exec_output WHERE exec_id = ? AND stream = ? AND offset < ? AND offset + size <= ?', execId, STREAM_CODE[stream], keepFrom, keepFrom);
      }
    });
    let recent = this.recent.get(execId);
    if (!recent) this.recent.set(execId, (recent = { stdout: [], stderr: [] }));
    for (const c of p.chunks) recent[c.stream].push(c);
    for (const stream of ['stdout', 'stderr'] as const) {
      const list = recent[stream];
      const last = list.at(-1);
      while (last && list.length > 1 && last.offset + last.data.length - list[0]!.offset > RECENT_BYTES) list.shift();
    }
  }

  /** Flushes every exec (at shutdown). */
  flushAll(): void {
    for (const id of [...this.pending.keys()]) this.flush(id);
  }

  /** Bytes written so far per stream (flushed or not). */
  ends(execId: string): Record<OutputStream, number> {
    const p = this.pending.get(execId);
    return p ? { ...p.end } : this.storedEnds(execId);
  }

  /**
   * Chunks of `stream` from `offset` on, oldest first, up to about `maxBytes`; `start` is the oldest
   * byte still kept (a request before it has lost start - offset bytes), `end` the bytes written so far.
   */
  read(execId: string, stream: OutputStream, offset: number, maxBytes = 4 * 1024 * 1024): { chunks: OutputChunk[]; start: number; end: number } {
    const code = STREAM_CODE[stream];
    const p = this.pending.get(execId);
    const waiting = p ? p.chunks.filter((c) => c.stream === stream) : [];
    const chunks: OutputChunk[] = [];
    let bytes = 0;
    const take = (c: OutputChunk): boolean => {
      if (c.offset + c.data.length <= offset) return true;
      const cut = offset > c.offset ? c.data.subarray(offset - c.offset) : c.data;
      chunks.push({ ...c, offset: Math.max(offset, c.offset), data: cut });
      bytes += cut.length;
      return bytes < maxBytes;
    };
    // A reader that keeps up is served from memory (then `start` is the oldest byte in memory).
    const memory = [...(this.recent.get(execId)?.[stream] ?? []), ...waiting];
    if (memory.length > 0 && memory[0]!.offset <= offset) {
      const last = memory.at(-1)!;
      for (const c of memory) if (!take(c)) break;
      return { chunks, start: memory[0]!.offset, end: p ? p.end[stream] : last.offset + last.data.length };
    }
    const first = this.db.get<{ offset: number }>('SELECT offset FROM exec_output WHERE exec_id = ? AND stream = ? ORDER BY offset LIMIT 1', execId, code);
    const end = p ? p.end[stream] : this.storedEnds(execId)[stream];
    const start = first?.offset ?? waiting[0]?.offset ?? end;
    // From the chunk holding `offset` on, by the primary key, a bounded number of rows: no blob
    // before it is read, and a page costs about maxBytes however much is kept.
    const from = this.db.get<{ offset: number }>('SELECT offset FROM exec_output WHERE exec_id = ? AND stream = ? AND offset <= ? ORDER BY offset DESC LIMIT 1', execId, code, offset)?.offset ?? 0;
    const rows = this.db.all<{ offset: number; at_us: number; data: Uint8Array }>(
      'SELECT offset, at_us, data FROM exec_output WHERE exec_id = ? AND stream = ? AND offset >= ? AND offset + size > ? ORDER BY offset LIMIT ?',
      execId, code, from, offset, PAGE_ROWS,
    );
    let more = true;
    for (const r of rows) if (!(more = take({ stream, offset: r.offset, atUs: r.at_us, data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) }))) break;
    // The unflushed tail follows only when the stored rows are all read (else the next page has them).
    if (more && rows.length < PAGE_ROWS) for (const c of waiting) if (!take(c)) break;
    return { chunks, start, end };
  }

  /** The exec ended: flushes it and lets go of its output in memory (readers read SQLite from now on). */
  finish(execId: string): void {
    this.flush(execId);
    this.recent.delete(execId);
    this.known.delete(execId);
  }

  /** Forgets an exec's output (with its sandbox). */
  drop(execId: string): void {
    this.recent.delete(execId);
    this.known.delete(execId);
    const p = this.pending.get(execId);
    if (p?.timer) clearTimeout(p.timer);
    this.pending.delete(execId);
    this.db.run('DELETE FROM exec_output WHERE exec_id = ?', execId);
  }

  private storedEnds(execId: string): Record<OutputStream, number> {
    const end = { stdout: 0, stderr: 0 };
    for (const stream of ['stdout', 'stderr'] as const)
      end[stream] = this.db.get<{ end: number }>('SELECT offset + size AS end FROM exec_output WHERE exec_id = ? AND stream = ? ORDER BY offset DESC LIMIT 1', execId, STREAM_CODE[stream])?.end ?? 0;
    return end;
  }
}
