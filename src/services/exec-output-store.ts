// The output of execs, kept durably with byte offsets so a client can re-attach from any offset,
// and a daemon that died leaves the output captured so far (up to the last flush) on disk.
//
// Writes are batched: chunks wait in memory up to flushMs or flushBytes, then go to SQLite in one
// transaction (one row per chunk costs a commit each at high output rates). Readers see the unflushed
// tail too. Each stream keeps at most maxBytes: older chunks are dropped, and a read from before the
// oldest kept byte says so (a gap) instead of pretending.
//
// Storing costs SQLite about 2 ms per MiB, which would cap a streamed exec near 150 MiB/s if done on
// the event loop that also reads the pipes and writes the client's socket. Once output comes in
// volume, the batches go to a worker thread with a connection of its own (exec-output-writer.ts);
// the latest output stays in memory until it is committed, so readers never miss a byte, and an
// exec's end waits for its last batch.
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { Database } from '../store/database.ts';
import { CorralError, type ErrorCode } from '../protocol/errors.ts';
import type { OutputBatch, WriterData, WriterMessage } from './exec-output-writer.ts';

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
  /**
   * Where flushes are written: 'inline' (in the flush, on this thread), 'worker' (a worker thread
   * with a connection of its own), or 'auto' (the default): inline until WORKER_AFTER bytes came
   * within a while, then the worker, until it has been idle. An in-memory database is always inline.
   */
  writer?: 'inline' | 'worker' | 'auto';
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
/** Chunks this big are rows as they are: a fast producer's pipe reads are large already, and not copying them saves time. */
const COALESCE_BELOW = 32 * 1024;

/**
 * Contiguous small chunks of a stream that arrived within COALESCE_US of each other, as one row:
 * output at a human pace keeps each chunk's time, a burst of small writes becomes one row.
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
    if (run && run.end === c.offset && c.atUs - run.first.atUs < COALESCE_US && c.data.length < COALESCE_BELOW && run.end - run.first.offset < COALESCE_BELOW) {
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
/** Output flushed within WORKER_WINDOW_MS that moves the writes to the worker ('auto'). */
const WORKER_AFTER = 4 * 1024 * 1024;
const WORKER_WINDOW_MS = 1000;
/** The worker ends after this long without a batch (it starts again when output comes in volume). */
const WORKER_IDLE_MS = 5000;
/** The longest a flush or an exec's end waits for the worker before it gives up on it. */
const WORKER_WAIT_MS = 30_000;
/**
 * Bytes waiting for a worker that is still busy, past which a flush waits for it (as an inline
 * write would have held this thread up). Only a worker held up by a lock elsewhere gets there: a
 * busy one is given at most about maxBytes per exec at a time.
 */
const WORKER_BACKLOG = 64 * 1024 * 1024;

/** A flushed chunk in memory. `seq`: 0 when written inline, Infinity while it waits for the worker, then the worker batch that writes it (or skips it: past the bound by then). */
type Flushed = OutputChunk & { seq: number };

/** The worker thread that writes batches, and what this thread knows of its progress. */
class OutputWriter {
  private readonly worker: Worker;
  /** [0] the last batch done (written or failed), [1] 1 once a batch failed. */
  private readonly state = new Int32Array(new SharedArrayBuffer(8));
  /** The worker's errors, read synchronously. */
  private readonly errors: MessagePort;
  /** The last batch posted. */
  last: number;
  private idle: NodeJS.Timeout | null = null;
  private readonly onIdle: () => void;
  /** Why it failed: set by a crash, or read from the errors port once. */
  private failed: { code: string; message: string } | null = null;

  /** `doneBefore`: the batches before this writer (seqs go on across writers); `onDone`: it is free for the next batch. */
  constructor(path: string, doneBefore: number, onDone: () => void, onIdle: () => void) {
    this.onIdle = onIdle;
    this.last = doneBefore;
    Atomics.store(this.state, 0, doneBefore);
    const { port1, port2 } = new MessageChannel();
    this.errors = port1;
    this.worker = new Worker(new URL('./exec-output-writer.ts', import.meta.url), { workerData: { path, state: this.state, errors: port2 } satisfies WriterData, transferList: [port2] });
    this.worker.on('message', onDone);
    // A worker that could not start (or died) fails its batches: waiting for them stops at once.
    this.worker.on('error', (e) => {
      this.failed ??= { code: 'INTERNAL', message: `the exec output writer failed: ${e.message}` };
      Atomics.store(this.state, 1, 1);
      Atomics.store(this.state, 0, 2 ** 31 - 1);
    });
    this.worker.unref();
    this.errors.unref();
  }

  /** The last batch done. */
  get done(): number {
    return Atomics.load(this.state, 0);
  }

  /** True when every batch posted is done. */
  get free(): boolean {
    return this.done >= this.last;
  }

  /** The error of a batch that failed, if one did. */
  failure(): { code: string; message: string } | null {
    if (Atomics.load(this.state, 1) !== 1) return null;
    this.failed ??= (receiveMessageOnPort(this.errors)?.message as { code: string; message: string } | undefined) ?? { code: 'INTERNAL', message: 'the exec output writer failed' };
    return this.failed;
  }

  /** Posts a batch; its bytes move to the worker (its buffer is transferred, not copied again). */
  post(batch: OutputBatch): void {
    this.worker.postMessage(batch satisfies WriterMessage, [batch.bytes]);
    this.last = batch.seq;
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(this.onIdle, WORKER_IDLE_MS).unref();
  }

  /** Blocks until batch `seq` (default: every batch posted) is done; STORAGE_BUSY after WORKER_WAIT_MS. */
  waitFor(seq = this.last): void {
    const deadline = Date.now() + WORKER_WAIT_MS;
    for (let done = this.done; done < seq; done = this.done) {
      const left = deadline - Date.now();
      if (left <= 0) throw new CorralError('STORAGE_BUSY', `the exec output writer wrote nothing for ${WORKER_WAIT_MS / 1000} s: the database may be locked by another process; retry`);
      Atomics.wait(this.state, 0, done, left);
    }
  }

  /** Ends the thread (after what was posted). */
  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.worker.postMessage({ close: true } satisfies WriterMessage);
  }
}

export class ExecOutputStore {
  private readonly db: Database;
  private readonly maxBytes: number;
  private readonly flushMs: number;
  private readonly flushBytes: number;
  private readonly nowUs: () => number;
  private readonly mode: 'inline' | 'worker' | 'auto';
  private readonly pending = new Map<string, Pending>();
  /** The latest flushed chunks of running execs, so readers that keep up never read them back from SQLite; none goes before it is written. */
  private readonly recent = new Map<string, Record<OutputStream, Flushed[]>>();
  /** The ends of running execs' streams as of their last flush. */
  private readonly known = new Map<string, Record<OutputStream, number>>();
  /** Flushed rows waiting for the worker to be free, per exec, with the ends as of their flush. */
  private readonly unposted = new Map<string, { rows: Flushed[]; end: Record<OutputStream, number> }>();
  private unpostedBytes = 0;
  /** The last batch given to the worker with rows of each running exec. */
  private readonly posted = new Map<string, number>();
  private writer: OutputWriter | null = null;
  /** Batches given to workers so far (the last one's seq). */
  private batches = 0;
  /** After a worker's batch failed, everything is written inline. */
  private writerBroken = false;
  /** Bytes flushed inline since windowStart ('auto' moves to the worker past WORKER_AFTER). */
  private windowBytes = 0;
  private windowStart = 0;

  constructor(db: Database, options: OutputStoreOptions = {}) {
    this.db = db;
    this.maxBytes = options.maxBytes ?? DEFAULT_OUTPUT_KEPT;
    this.flushMs = options.flushMs ?? 50;
    this.flushBytes = options.flushBytes ?? 256 * 1024;
    this.nowUs = options.nowUs ?? (() => Math.floor((performance.timeOrigin + performance.now()) * 1000));
    this.mode = db.path === ':memory:' ? 'inline' : (options.writer ?? 'auto');
  }

  /** Appends bytes to an exec's stream; returns the chunk with its offset. */
  append(execId: string, stream: OutputStream, data: Buffer): OutputChunk {
    let p = this.pending.get(execId);
    if (!p) {
      // A running exec's ends are known from its last flush: the database is asked only once.
      const known = this.known.get(execId);
      p = { chunks: [], bytes: 0, timer: null, end: known ? { ...known } : this.storedEnds(execId) };
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

  /**
   * Writes an exec's waiting chunks now (and drops what is past the bound), or gives them to the
   * worker: at once when it is free, else with whatever else waits once it is.
   */
  flush(execId: string): void {
    const p = this.pending.get(execId);
    if (!p) return;
    if (p.timer) clearTimeout(p.timer);
    this.pending.delete(execId);
    if (p.chunks.length === 0) return;
    this.known.set(execId, { ...p.end });
    const writer = this.writerFor(p.bytes);
    const rows: Flushed[] = coalesce(p.chunks).map((c) => ({ ...c, seq: writer ? Infinity : 0 }));
    if (writer) {
      const waiting = this.unposted.get(execId);
      if (waiting) {
        waiting.rows.push(...rows);
        waiting.end = { ...p.end };
      } else this.unposted.set(execId, { rows: [...rows], end: { ...p.end } });
      this.unpostedBytes += p.bytes;
      this.post();
      if (this.unpostedBytes > WORKER_BACKLOG) this.settle();
    } else {
      this.db.transaction(() => {
        for (const c of rows) this.db.run('INSERT INTO exec_output(exec_id, stream, offset, at_us, size, data) VALUES (?, ?, ?, ?, ?, ?)', execId, STREAM_CODE[c.stream], c.offset, c.atUs, c.data.length, c.data);
        for (const t of this.trims(p.end)) this.db.run('DELETE FROM exec_output WHERE exec_id = ? AND stream = ? AND offset < ? AND offset + size <= ?', execId, t.code, t.keepFrom, t.keepFrom);
      });
    }
    let recent = this.recent.get(execId);
    if (!recent) this.recent.set(execId, (recent = { stdout: [], stderr: [] }));
    // The rows, not the pipe reads: a reader that follows gets fewer, larger chunks.
    for (const c of rows) recent[c.stream].push(c);
    this.trimRecent(execId);
  }

  /** Flushes every exec and waits until the worker wrote everything (at shutdown). */
  flushAll(): void {
    for (const id of [...this.pending.keys()]) this.flush(id);
    this.settle();
  }

  /** Bytes written so far per stream (flushed or not). */
  ends(execId: string): Record<OutputStream, number> {
    const p = this.pending.get(execId);
    const known = p?.end ?? this.known.get(execId);
    return known ? { ...known } : this.storedEnds(execId);
  }

  /**
   * Chunks of `stream` from `offset` on, oldest first, up to about `maxBytes`; `start` is the oldest
   * byte still kept (a request before it has lost start - offset bytes), `end` the bytes written so far.
   */
  read(execId: string, stream: OutputStream, offset: number, maxBytes = 4 * 1024 * 1024): { chunks: OutputChunk[]; start: number; end: number } {
    const code = STREAM_CODE[stream];
    const p = this.pending.get(execId);
    const recent = this.recent.get(execId);
    const waiting = p ? p.chunks.filter((c) => c.stream === stream) : [];
    const memory: OutputChunk[] = recent ? (waiting.length > 0 ? [...recent[stream], ...waiting] : recent[stream]) : waiting;
    const known = p?.end[stream] ?? this.known.get(execId)?.[stream];
    // An exec written in this process whose stream has nothing in memory has nothing at all: a
    // reader that caught up (or a stream that stays empty) costs no query.
    if (memory.length === 0 && known !== undefined && offset >= known) return { chunks: [], start: known, end: known };
    const chunks: OutputChunk[] = [];
    let bytes = 0;
    let at = offset;
    // Contiguous chunks from `at` on: a hole (rows the worker has not written yet) ends the page.
    const take = (c: OutputChunk): boolean => {
      if (c.offset + c.data.length <= at) return true;
      if (c.offset > at) return false;
      const data = at > c.offset ? c.data.subarray(at - c.offset) : c.data;
      chunks.push({ stream, offset: at, atUs: c.atUs, data });
      at += data.length;
      bytes += data.length;
      return bytes < maxBytes;
    };
    // A reader that keeps up is served from memory (then `start` is the oldest byte in memory).
    if (memory.length > 0 && memory[0]!.offset <= offset) {
      const last = memory.at(-1)!;
      // The first chunk that ends after `offset`, by bisection (the ring holds a few hundred).
      let lo = 0;
      let hi = memory.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const c = memory[mid]!;
        if (c.offset + c.data.length <= offset) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < memory.length; i++) if (!take(memory[i]!)) break;
      return { chunks, start: memory[0]!.offset, end: known ?? last.offset + last.data.length };
    }
    const first = this.db.get<{ offset: number }>('SELECT offset FROM exec_output WHERE exec_id = ? AND stream = ? ORDER BY offset LIMIT 1', execId, code);
    const end = known ?? this.storedEnds(execId)[stream];
    const start = first?.offset ?? memory[0]?.offset ?? end;
    at = Math.max(offset, start);
    // From the chunk holding `offset` on, by the primary key, a bounded number of rows: no blob
    // before it is read, and a page costs about maxBytes however much is kept.
    const from = this.db.get<{ offset: number }>('SELECT offset FROM exec_output WHERE exec_id = ? AND stream = ? AND offset <= ? ORDER BY offset DESC LIMIT 1', execId, code, at)?.offset ?? 0;
    const rows = this.db.all<{ offset: number; at_us: number; data: Uint8Array }>(
      'SELECT offset, at_us, data FROM exec_output WHERE exec_id = ? AND stream = ? AND offset >= ? AND offset + size > ? ORDER BY offset LIMIT ?',
      execId, code, from, at, PAGE_ROWS,
    );
    let more = true;
    for (const r of rows) if (!(more = take({ stream, offset: r.offset, atUs: r.at_us, data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) }))) break;
    // What is in memory follows only when the stored rows are all read (else the next page has them).
    if (more && rows.length < PAGE_ROWS) for (const c of memory) if (!take(c)) break;
    return { chunks, start, end };
  }

  /** The exec ended: flushes it, waits until its output is written, and lets go of it in memory (readers read SQLite from now on). */
  finish(execId: string): void {
    this.flush(execId);
    if (this.unposted.has(execId)) this.settle();
    else {
      const seq = this.posted.get(execId);
      if (seq !== undefined) this.writer?.waitFor(seq);
      // A batch that failed is not the business of this exec's end (a flush saw or will see it).
      this.checkWriter(false);
    }
    this.posted.delete(execId);
    this.recent.delete(execId);
    this.known.delete(execId);
  }

  /** Forgets an exec's output (with its sandbox). */
  drop(execId: string): void {
    this.recent.delete(execId);
    this.known.delete(execId);
    for (const r of this.unposted.get(execId)?.rows ?? []) this.unpostedBytes -= r.data.length;
    this.unposted.delete(execId);
    this.posted.delete(execId);
    const p = this.pending.get(execId);
    if (p?.timer) clearTimeout(p.timer);
    this.pending.delete(execId);
    // Rows the worker is writing would outlive the delete.
    this.settle();
    this.db.run('DELETE FROM exec_output WHERE exec_id = ?', execId);
  }

  /** The bound per stream as of `end`: rows wholly before keepFrom go. */
  private trims(end: Record<OutputStream, number>): { code: 1 | 2; keepFrom: number }[] {
    return (['stdout', 'stderr'] as const).map((stream) => ({ code: STREAM_CODE[stream], keepFrom: end[stream] - this.maxBytes })).filter((t) => t.keepFrom > 0);
  }

  /** Drops the oldest flushed chunks past RECENT_BYTES, but never one still to be written. */
  private trimRecent(execId: string): void {
    const recent = this.recent.get(execId);
    if (!recent) return;
    const done = this.writer?.done ?? Infinity;
    for (const stream of ['stdout', 'stderr'] as const) {
      const list = recent[stream];
      const last = list.at(-1);
      while (last && list.length > 1 && last.offset + last.data.length - list[0]!.offset > RECENT_BYTES && list[0]!.seq <= done) list.shift();
    }
  }

  /**
   * Gives the worker, if it is free, everything waiting as one batch. Rows the bound drops by then
   * are not written at all: a writer that falls behind catches up with the latest output (the
   * stored result is the same), and this thread never waits for it.
   */
  private post(): void {
    const writer = this.writer;
    // A writer that failed gets nothing more: the next flush writes what waits, inline.
    if (!writer || !writer.free || this.unposted.size === 0 || writer.failure()) return;
    const seq = ++this.batches;
    const execs: { execId: string; kept: Flushed[]; end: Record<OutputStream, number> }[] = [];
    let size = 0;
    for (const [execId, { rows, end }] of this.unposted) {
      const keepFrom = { stdout: end.stdout - this.maxBytes, stderr: end.stderr - this.maxBytes };
      // Every row stays in memory until this batch is written, the ones it skips too (until then
      // the database has not dropped what precedes them, and a reader there must not find a hole).
      for (const r of rows) r.seq = seq;
      const kept = rows.filter((r) => r.offset + r.data.length > keepFrom[r.stream]);
      for (const r of kept) size += r.data.length;
      execs.push({ execId, kept, end });
      this.posted.set(execId, seq);
    }
    // The rows' bytes in one buffer that moves to the worker: one copy, instead of a structured
    // clone's two, and no garbage here.
    const view = Buffer.allocUnsafeSlow(size);
    const bytes = view.buffer;
    let at = 0;
    const batch: OutputBatch = { seq, bytes, execs: [] };
    for (const { execId, kept, end } of execs) {
      batch.execs.push({
        execId,
        rows: kept.map((r) => {
          view.set(r.data, at);
          at += r.data.length;
          return { code: STREAM_CODE[r.stream], offset: r.offset, atUs: r.atUs, start: at - r.data.length, size: r.data.length };
        }),
        trims: this.trims(end),
      });
    }
    this.unposted.clear();
    this.unpostedBytes = 0;
    writer.post(batch);
    for (const { execId } of execs) this.trimRecent(execId);
  }

  /** Waits until the worker wrote everything given to it, and (with `all`) what waits for it too. */
  private settle(all = true): void {
    if (this.writer) {
      this.writer.waitFor();
      if (all && this.unposted.size > 0) {
        this.post();
        this.writer.waitFor();
      }
    }
    // A batch that failed is not the business of this exec's end (a flush saw or will see it).
    this.checkWriter(false);
  }

  /** The worker a flush of `bytes` goes to, started when output comes in volume; null: write inline. */
  private writerFor(bytes: number): OutputWriter | null {
    this.checkWriter();
    if (this.writer || this.mode === 'inline' || this.writerBroken) return this.writer;
    if (this.mode === 'auto') {
      const now = Date.now();
      if (now - this.windowStart > WORKER_WINDOW_MS) {
        this.windowStart = now;
        this.windowBytes = 0;
      }
      this.windowBytes += bytes;
      if (this.windowBytes < WORKER_AFTER) return null;
    }
    const writer = new OutputWriter(
      this.db.path,
      this.batches,
      () => {
        // Free again: what waited meanwhile goes now (a flush would post it too, but output may have stopped).
        if (this.writer === writer) this.post();
      },
      () => {
        // Idle with everything written: the thread goes (a failure is seen by the next flush first).
        if (this.writer !== writer || !writer.free || this.unposted.size > 0 || writer.failure()) return;
        this.writer = null;
        this.windowBytes = 0;
        writer.close();
      },
    );
    this.writer = writer;
    return writer;
  }

  /**
   * After a worker's batch failed: what it still had is awaited, it goes, and writes are inline
   * from now on (rows still waiting for it are written then). The failure is thrown once (when
   * `raise`), from a flush, as an inline write would have.
   */
  private checkWriter(raise = true): void {
    const writer = this.writer;
    const failure = writer?.failure();
    if (!writer || !failure) return;
    writer.waitFor();
    writer.close();
    this.writer = null;
    this.writerBroken = true;
    const waiting = [...this.unposted];
    this.unposted.clear();
    this.unpostedBytes = 0;
    this.db.transaction(() => {
      for (const [execId, { rows, end }] of waiting) {
        for (const c of rows) {
          c.seq = 0;
          this.db.run('INSERT INTO exec_output(exec_id, stream, offset, at_us, size, data) VALUES (?, ?, ?, ?, ?, ?)', execId, STREAM_CODE[c.stream], c.offset, c.atUs, c.data.length, c.data);
        }
        for (const t of this.trims(end)) this.db.run('DELETE FROM exec_output WHERE exec_id = ? AND stream = ? AND offset < ? AND offset + size <= ?', execId, t.code, t.keepFrom, t.keepFrom);
      }
    });
    if (raise) throw new CorralError(failure.code as ErrorCode, failure.message);
  }

  private storedEnds(execId: string): Record<OutputStream, number> {
    const end = { stdout: 0, stderr: 0 };
    for (const stream of ['stdout', 'stderr'] as const)
      end[stream] = this.db.get<{ end: number }>('SELECT offset + size AS end FROM exec_output WHERE exec_id = ? AND stream = ? ORDER BY offset DESC LIMIT 1', execId, STREAM_CODE[stream])?.end ?? 0;
    return end;
  }
}
