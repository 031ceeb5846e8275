// A sandbox's files over the API: read (byte ranges), write, edit, list, stat, mkdir, remove, move,
// tar download and upload, and watch. Every write is one commit in the sandbox's vault.
import type {
  FileChangeEvent,
  FileEditResult,
  FileInfo,
  FileList,
  FileMkdirResult,
  FileMoveResult,
  FileRemoveResult,
  FileUploadResult,
  FileWriteResult,
} from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions, RequestBody } from './api-client.ts';
import { utf8Text } from './sdk-bytes.ts';
import { CorralApiError } from './sdk-errors.ts';
import type { SseEvent } from './sse-reader.ts';

export interface ReadOptions extends CallOptions {
  /** The first byte to read (default 0). */
  offset?: number;
  /** Bytes to read at most (default: to the end). */
  length?: number;
}

export interface WriteOptions extends CallOptions {
  /** Permission bits: a number (0o755) or octal text ('0755') (default: 0644 for a new file, its own for an existing one). */
  mode?: number | string;
  /** Add to the end of the file instead of replacing it (default false). */
  append?: boolean;
  /** Create missing parent directories (default true). */
  parents?: boolean;
}

export interface ListOptions extends CallOptions {
  /** Everything below, depth first (default false). */
  recursive?: boolean;
  /** Entries at most, 1 to 10000 (default 1000); `truncated` says when the list was cut. */
  limit?: number;
}

/** What a file's bytes or a tar can be sent as. A ReadableStream needs a fetch that streams request bodies (Node does; most browsers do not over HTTP/1.1). */
export type UploadBody = string | Uint8Array | Blob | ReadableStream<Uint8Array>;

/** A watch of a directory: `for await` gives each change; close() (or leaving the loop) ends it. */
export interface FileWatch extends AsyncIterable<FileChangeEvent> {
  /** The directory watched. */
  readonly path: string;
  /** The vault head the watch started from: every later commit's changes come as events. */
  readonly commit: string;
  close(): Promise<void>;
}

function bodyOf(data: UploadBody): RequestBody {
  return (data instanceof Uint8Array ? (data as Uint8Array<ArrayBuffer>) : data) as RequestBody;
}

function modeText(mode: number | string): string {
  return typeof mode === 'number' ? mode.toString(8).padStart(4, '0') : mode;
}

/** The call options alone, without the route's own options. */
function callOf(options: CallOptions): CallOptions {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) };
}

export class SandboxFiles {
  private readonly client: ApiClient;
  private readonly base: string;

  constructor(client: ApiClient, sandboxId: string) {
    this.client = client;
    this.base = `/v1/sandboxes/${sandboxId}/files`;
  }

  /** A file's bytes, or a range of them; symlinks inside the workspace are followed. */
  read(path: string, options: ReadOptions = {}): Promise<Uint8Array> {
    return this.client.bytes({ method: 'GET', path: this.base, query: { path, offset: options.offset, length: options.length } }, callOf(options));
  }

  /** A file's content as UTF-8 text. */
  async readText(path: string, options: ReadOptions = {}): Promise<string> {
    return utf8Text(await this.read(path, options));
  }

  /** Creates, replaces or appends to a file (a string is written as UTF-8); one commit. */
  write(path: string, data: UploadBody, options: WriteOptions = {}): Promise<FileWriteResult> {
    return this.client.json<FileWriteResult>(
      {
        method: 'PUT',
        path: this.base,
        query: { path, mode: options.mode === undefined ? undefined : modeText(options.mode), append: options.append, parents: options.parents },
        body: bodyOf(data),
      },
      callOf(options),
    );
  }

  /** Replaces exact text (no patterns): oldText must occur once unless replaceAll (EDIT_NO_MATCH, EDIT_AMBIGUOUS otherwise). */
  edit(path: string, oldText: string, newText: string, options: CallOptions & { /** Replace every occurrence (default false). */ replaceAll?: boolean } = {}): Promise<FileEditResult> {
    return this.client.json<FileEditResult>(
      { method: 'POST', path: `${this.base}/edit`, json: { path, oldText, newText, ...(options.replaceAll !== undefined ? { replaceAll: options.replaceAll } : {}) } },
      callOf(options),
    );
  }

  /** A directory's entries (default: the workspace root). */
  list(path = '/', options: ListOptions = {}): Promise<FileList> {
    return this.client.json<FileList>({ method: 'GET', path: `${this.base}/list`, query: { path, recursive: options.recursive, limit: options.limit } }, callOf(options));
  }

  /** One entry: kind, mode, size, mtime, hash (a symlink is described, not followed). */
  stat(path: string, options: CallOptions = {}): Promise<FileInfo> {
    return this.client.json<FileInfo>({ method: 'GET', path: `${this.base}/stat`, query: { path } }, callOf(options));
  }

  /** Whether something exists at the path. */
  async exists(path: string, options: CallOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, options);
      return true;
    } catch (e) {
      if (e instanceof CorralApiError && e.code === 'PATH_NOT_FOUND') return false;
      throw e;
    }
  }

  /** Creates a directory; with parents, missing parents too, and an existing directory is fine. */
  mkdir(path: string, options: CallOptions & { /** Create missing parents and accept an existing directory (default false). */ parents?: boolean } = {}): Promise<FileMkdirResult> {
    return this.client.json<FileMkdirResult>({ method: 'POST', path: `${this.base}/mkdir`, json: { path, ...(options.parents !== undefined ? { parents: options.parents } : {}) } }, callOf(options));
  }

  /** Removes a file or link, or a directory with recursive. */
  remove(path: string, options: CallOptions & { /** Remove a directory and everything below (default false). */ recursive?: boolean } = {}): Promise<FileRemoveResult> {
    return this.client.json<FileRemoveResult>({ method: 'DELETE', path: this.base, query: { path, recursive: options.recursive } }, callOf(options));
  }

  /** Moves or renames to exactly `to` (never into a directory there). */
  move(from: string, to: string, options: CallOptions & { /** Replace a file or link at `to` (default false: PATH_EXISTS). */ overwrite?: boolean } = {}): Promise<FileMoveResult> {
    return this.client.json<FileMoveResult>({ method: 'POST', path: `${this.base}/move`, json: { from, to, ...(options.overwrite !== undefined ? { overwrite: options.overwrite } : {}) } }, callOf(options));
  }

  /**
   * A directory (default the root) or one file as a tar stream; it resolves once the answer starts
   * (errors such as PATH_NOT_FOUND reject here). Read the stream to its end or cancel it.
   */
  download(path = '/', options: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return this.client.stream({ method: 'GET', path: `${this.base}/download`, query: { path } }, callOf(options));
  }

  /** Imports a tar (ustar, pax, GNU; not gzipped) into a directory (default the root), as one commit. */
  upload(path: string, tar: UploadBody, options: CallOptions = {}): Promise<FileUploadResult> {
    return this.client.json<FileUploadResult>({ method: 'PUT', path: `${this.base}/upload`, query: { path }, body: bodyOf(tar), contentType: 'application/x-tar' }, callOf(options));
  }

  /**
   * Watches a directory (default the root) for files created, modified and deleted by any commit to
   * the sandbox's vault. Resolves once the watch is established, so every later change is seen.
   */
  async watch(path = '/', options: CallOptions = {}): Promise<FileWatch> {
    // close() aborts the request, so it ends the watch at once even while a read waits for a change.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const events = this.client.sse({ method: 'GET', path: `${this.base}/watch`, query: { path } }, { ...callOf(options), signal });
    const first = await events.next();
    if (first.done || first.value.event !== 'ready') {
      await events.return(undefined);
      if (!first.done && first.value.event === 'error') throw envelopeError(first.value);
      throw new CorralApiError('BAD_RESPONSE', 'the watch did not start with a ready event', {});
    }
    const ready = JSON.parse(first.value.data) as { path: string; commit: string };
    async function* changes(): AsyncGenerator<FileChangeEvent> {
      try {
        for await (const e of events) {
          if (e.event === 'change') yield JSON.parse(e.data) as FileChangeEvent;
          else if (e.event === 'error') throw envelopeError(e);
        }
      } catch (e) {
        if (stop.signal.aborted && !options.signal?.aborted) return;
        throw e;
      }
    }
    const iterator = changes();
    return {
      path: ready.path,
      commit: ready.commit,
      [Symbol.asyncIterator]: () => iterator,
      close: async () => {
        stop.abort();
        await iterator.return(undefined);
        await events.return(undefined);
      },
    };
  }
}

/** The error an `event: error` of a stream carries (the error envelope). */
function envelopeError(e: SseEvent): CorralApiError {
  try {
    const body = JSON.parse(e.data) as { error: { code: string; message: string; details?: Record<string, unknown>; requestId?: string } };
    return new CorralApiError(body.error.code, body.error.message, { details: body.error.details ?? {}, requestId: body.error.requestId ?? null });
  } catch {
    return new CorralApiError('BAD_RESPONSE', 'the stream ended with an error the daemon did not describe', {});
  }
}
