// Exec frames as the SDK hands them out: the wire frames (ExecFrame events of the SSE routes) with
// output decoded lazily into bytes and text, so a consumer pays only for the form it reads.
import type { ExecFrameWire, ExecRecord } from '../protocol/api-schemas.ts';
import { base64Decode, toBytes, utf8Text } from './sdk-bytes.ts';

export type OutputStream = 'stdout' | 'stderr';

/** Output bytes of one stream, at a byte offset of that stream. */
export interface ExecOutputFrame {
  type: 'output';
  stream: OutputStream;
  /** Where these bytes start in their stream (resume from offset + data.length). */
  offset: number;
  /** When they were produced, microseconds since the epoch. */
  atUs: number;
  /** The bytes. */
  readonly data: Uint8Array;
  /** The bytes as UTF-8 text (a multi-byte character split across frames shows as U+FFFD: join `data` to be exact). */
  readonly text: string;
}

export type ExecFrame =
  /** The command started (not sent for a command that never ran, e.g. denied by the policy). */
  | { type: 'started'; exec: string; pid: number }
  | ExecOutputFrame
  /** Bytes from..to of a stream are no longer kept by the daemon; the stream resumes at `to`. */
  | { type: 'gap'; stream: OutputStream; from: number; to: number }
  /** The command still runs after `elapsedMs`. */
  | { type: 'heartbeat'; elapsedMs: number }
  /** The end: the exec's final record (its result envelope in `exec.result`). Always the last frame. */
  | { type: 'exit'; exec: ExecRecord };

/** Byte offsets reached in each stream: where a re-attach resumes. */
export interface OutputOffsets {
  stdout: number;
  stderr: number;
}

function outputFrame(w: Extract<ExecFrameWire, { type: 'output' }>): ExecOutputFrame {
  let bytes: Uint8Array | undefined;
  let text: string | undefined = w.encoding === 'utf8' ? w.data : undefined;
  return {
    type: 'output',
    stream: w.stream,
    offset: w.offset,
    atUs: w.atUs,
    get data(): Uint8Array {
      return (bytes ??= w.encoding === 'base64' ? base64Decode(w.data) : toBytes(w.data));
    },
    get text(): string {
      return (text ??= utf8Text(this.data));
    },
  };
}

/** The frame in an SSE event's data, or null for a frame type this SDK does not know. */
export function decodeFrame(data: string): ExecFrame | null {
  return frameOf(JSON.parse(data) as ExecFrameWire);
}

/** The frame of a parsed wire frame, or null for a frame type this SDK does not know. */
export function frameOf(w: ExecFrameWire): ExecFrame | null {
  switch (w.type) {
    case 'output':
      return outputFrame(w);
    case 'started':
    case 'gap':
    case 'heartbeat':
    case 'exit':
      return w;
    default:
      return null;
  }
}

/** Offsets from an SSE event id (`stdout,stderr`), or null when it is not one. */
export function parseEventId(id: string | null): OutputOffsets | null {
  const m = id === null ? null : /^([0-9]{1,15}),([0-9]{1,15})$/.exec(id);
  return m ? { stdout: Number(m[1]), stderr: Number(m[2]) } : null;
}

/** The output of frames joined per stream, as bytes. */
export function joinOutput(frames: Iterable<ExecFrame>, stream: OutputStream): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  for (const f of frames) {
    if (f.type !== 'output' || f.stream !== stream) continue;
    parts.push(f.data);
    size += f.data.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
