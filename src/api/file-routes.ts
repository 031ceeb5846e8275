// File routes of a sandbox: read (byte ranges), write, edit, list, stat, mkdir, remove, move, tar
// download and upload, and a watch as Server-Sent Events. Handlers check the query and the body,
// call SandboxFiles (which owns every rule) and shape the answer. The raw-body routes (PUT of a
// file or a tar) read their body themselves, streaming, under limits of their own.
import { PassThrough, Readable } from 'node:stream';
import type { Context, Hono } from 'hono';
import {
  fileEditSchema,
  fileMkdirSchema,
  fileMoveSchema,
  type FileEditResult,
  type FileInfo,
  type FileList,
  type FileMkdirResult,
  type FileMoveResult,
  type FileRemoveResult,
  type FileUploadResult,
  type FileWriteResult,
} from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import { normalizePath } from '../protocol/paths.ts';
import type { SandboxFiles } from '../services/sandbox-files.ts';
import type { Scope } from '../services/sandbox-service.ts';
import { apiError } from './api-errors.ts';
import { readJson, readLimited, tooLarge } from './api-middleware.ts';
import type { ApiEnv, ApiLogger } from './api-types.ts';
import { actorOf, requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';
import { sandboxIdParam } from './sandbox-routes.ts';
import { boolQuery, oneQuery, onlyQuery } from './query-params.ts';

export type SandboxFilesView = Pick<SandboxFiles, 'as' | 'vaultOf' | 'stat' | 'list' | 'read' | 'write' | 'edit' | 'mkdir' | 'remove' | 'move' | 'download' | 'upload' | 'watch'>;

export interface FileRouteOptions {
  /** The largest file a PUT …/files takes, in bytes (default 64 MiB). */
  maxFileBytes?: number;
  /** The largest tar a PUT …/files/upload takes, in bytes (default 1 GiB). */
  maxTarBytes?: number;
  /** How often a watch polls the vault's head (default 150 ms). */
  watchIntervalMs?: number;
  /** How often a watch sends a keepalive comment (default 15 s). */
  keepaliveMs?: number;
  /** Where failures inside a stream (after the status was sent) are logged. */
  logger?: ApiLogger;
}

export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_TAR_BYTES = 1024 * 1024 * 1024;
const KEEPALIVE_MS = 15_000;
/** Bytes of events a watch holds for a client that does not read before it drops the client. */
const MAX_WATCH_BACKLOG = 4 * 1024 * 1024;

const FILES = '/v1/sandboxes/:id/files';
// The routes whose raw bodies are read here, under their own limits, not the global one.
const RAW_BODY_ROUTE = /^\/v1\/sandboxes\/[^/]+\/files(\/upload)?$/;

/** Whether a request's body is read (and limited) by the file routes instead of the global body limit. */
export function isRawBodyRoute(method: string, path: string): boolean {
  return method === 'PUT' && RAW_BODY_ROUTE.test(path);
}

/**
 * Whose files the caller may touch (every file route needs the `files` scope), and the files as the
 * caller changes them: commits and audit records name the requester, with origin api.
 */
function caller(c: Context<ApiEnv>, files: SandboxFilesView): { scope: Scope; f: SandboxFilesView } {
  return { scope: callerScope(c), f: files.as({ actor: `api:${actorOf(c)}`, origin: 'api' }) };
}

/** Whose files the caller may see. */
function callerScope(c: Context<ApiEnv>): Scope {
  requireScope(c, 'files');
  return scopeOf(c);
}

function invalid(message: string, details: Record<string, unknown> = {}): CorralError {
  return new CorralError('INVALID_ARGUMENT', message, details);
}

/** ?path=, normalised (traversal, NUL and over-long paths are INVALID_PATH); `fallback` when absent, else required. */
function pathQuery(c: Context<ApiEnv>, fallback?: string): string {
  const raw = oneQuery(c, 'path');
  if (raw === undefined) {
    if (fallback === undefined) throw new CorralError('INVALID_PATH', 'give the file\'s path in ?path= (a path in the sandbox\'s workspace, e.g. /src/main.ts)', {});
    return fallback;
  }
  return normalizePath(raw);
}

function intQuery(c: Context<ApiEnv>, name: string): number | undefined {
  const v = oneQuery(c, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v)) throw invalid(`${name} must be a whole number, got '${v.slice(0, 40)}'`, { parameter: name });
  return Number(v);
}

/** ?mode= as octal permission bits: 644, 0644 or 0o644. */
function modeQuery(c: Context<ApiEnv>): number | undefined {
  const v = oneQuery(c, 'mode');
  if (v === undefined) return undefined;
  const m = /^(?:0o?)?([0-7]{1,4})$/.exec(v);
  if (!m) throw invalid(`mode must be octal permission bits such as 0644, got '${v.slice(0, 40)}'`, { parameter: 'mode' });
  return parseInt(m[1]!, 8);
}

const octal = (mode: number): string => mode.toString(8).padStart(4, '0');

/** Refuses a body whose Content-Length is over `limit` before any of it is read. */
function checkDeclaredLength(c: Context<ApiEnv>, limit: number): void {
  const raw = c.req.raw;
  const declared = raw.headers.get('content-length');
  if (declared === null || raw.headers.has('transfer-encoding')) return;
  if (!/^\d{1,16}$/.test(declared)) throw invalid('the Content-Length header is not a number');
  if (Number(declared) > limit) throw tooLarge(limit);
}

/** The whole raw body, read chunk by chunk and refused as soon as it passes `limit`. */
async function readRawBody(c: Context<ApiEnv>, limit: number): Promise<Uint8Array> {
  checkDeclaredLength(c, limit);
  const body = c.req.raw.body;
  if (!body) return new Uint8Array(0);
  return readLimited(body, limit);
}

/** The raw body as a Node stream that fails with PAYLOAD_TOO_LARGE once it passes `limit`. */
function limitedBodyStream(c: Context<ApiEnv>, limit: number): Readable {
  checkDeclaredLength(c, limit);
  const body = c.req.raw.body;
  if (!body) return Readable.from([]);
  const reader = body.getReader();
  let size = 0;
  return new Readable({
    read() {
      reader.read().then(
        ({ done, value }) => {
          if (done) return void this.push(null);
          size += value.byteLength;
          if (size > limit) return void this.destroy(tooLarge(limit));
          this.push(value);
        },
        (e: unknown) => this.destroy(e instanceof Error ? e : new Error(String(e))),
      );
    },
    destroy(err, cb) {
      reader.cancel().catch(() => undefined);
      cb(err);
    },
  });
}

/** A web stream of what a Node stream carries; cancelling it (the client went) destroys the Node stream with an error. */
function webStreamOf(source: PassThrough): ReadableStream<Uint8Array> {
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { done, value } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      },
      cancel() {
        source.destroy(new Error('the client went away'));
      },
    },
    { highWaterMark: 0 },
  );
}

function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function registerFileRoutes(app: Hono<ApiEnv>, docs: RouteDocs, files: SandboxFilesView, options: FileRouteOptions = {}): void {
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const maxTarBytes = options.maxTarBytes ?? DEFAULT_MAX_TAR_BYTES;
  const keepaliveMs = options.keepaliveMs ?? KEEPALIVE_MS;
  const pathParam = { name: 'path', description: 'A path in the sandbox\'s workspace (absolute or relative to its root; no \'..\' above the root, no NUL).' };

  app.get(FILES, (c) => {
    onlyQuery(c, ['path', 'offset', 'length']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c);
    const offset = intQuery(c, 'offset');
    const length = intQuery(c, 'length');
    const r = files.read(id, path, { ...(offset !== undefined ? { offset } : {}), ...(length !== undefined ? { length } : {}) }, callerScope(c));
    return c.body(r.data as Uint8Array<ArrayBuffer>, 200, {
      'content-type': 'application/octet-stream',
      'x-corral-size': String(r.size),
      'x-corral-mode': octal(r.mode),
      'x-corral-offset': String(r.offset),
    });
  });
  docs.add({
    method: 'get',
    path: FILES,
    operationId: 'readFile',
    tags: ['files'],
    summary: 'Read a file\'s bytes, or a byte range of them',
    description: 'Symlinks inside the workspace are followed. Headers: x-corral-size (the whole file), x-corral-mode (octal), x-corral-offset. An offset past the end is 400; a directory is IS_A_DIRECTORY (409).',
    query: [
      { ...pathParam, required: true },
      { name: 'offset', description: 'The first byte to read (default 0).', type: 'integer' },
      { name: 'length', description: 'Bytes to read at most (default: to the end).', type: 'integer' },
    ],
    responses: { 200: { description: 'The bytes.', contentType: 'application/octet-stream' } },
    errors: [400, 404, 409],
  });

  app.put(FILES, async (c) => {
    onlyQuery(c, ['path', 'mode', 'append', 'parents']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c);
    const mode = modeQuery(c);
    const append = boolQuery(c, 'append');
    const parents = boolQuery(c, 'parents');
    const { scope, f } = caller(c, files);
    // Everything that can be refused is refused before the body is read.
    f.vaultOf(id, scope);
    const data = await readRawBody(c, maxFileBytes);
    const r = f.write(id, path, data, { ...(mode !== undefined ? { mode } : {}), ...(append !== undefined ? { append } : {}), ...(parents !== undefined ? { parents } : {}) }, scope);
    return c.json(r satisfies FileWriteResult);
  });
  docs.add({
    method: 'put',
    path: FILES,
    operationId: 'writeFile',
    tags: ['files'],
    summary: 'Write a file from the raw body (one commit): create, replace or append',
    description: `The body is the file's bytes (any Content-Type), at most ${maxFileBytes} bytes by default (413 before it is read when Content-Length says so). Missing parent directories are created unless parents=false. The vault's quotas apply (413 QUOTA_EXCEEDED). Symlinks are never written through.`,
    query: [
      { ...pathParam, required: true },
      { name: 'mode', description: 'Octal permission bits for the file, such as 0644 (default: 0644 for a new file, its own for an existing one); at most 0777.' },
      { name: 'append', description: 'true: add the body to the end of the file (default false).', type: 'boolean' },
      { name: 'parents', description: 'false: refuse when the parent directory is missing (default true: create it).', type: 'boolean' },
    ],
    rawBody: { contentType: 'application/octet-stream', description: 'The file\'s bytes.' },
    responses: { 200: { description: 'The file written and the commit (null when nothing changed).', schema: 'FileWriteResult' } },
    errors: [400, 404, 409, 413],
  });

  app.delete(FILES, (c) => {
    onlyQuery(c, ['path', 'recursive']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c);
    const recursive = boolQuery(c, 'recursive');
    const { scope, f } = caller(c, files);
    return c.json(f.remove(id, path, { recursive: recursive === true }, scope) satisfies FileRemoveResult);
  });
  docs.add({
    method: 'delete',
    path: FILES,
    operationId: 'removeFile',
    tags: ['files'],
    summary: 'Remove a file or link, or a directory with recursive=true (one commit)',
    description: 'The workspace root cannot be removed. A directory without recursive=true is IS_A_DIRECTORY (409).',
    query: [
      { ...pathParam, required: true },
      { name: 'recursive', description: 'true: remove a directory and everything below it (default false).', type: 'boolean' },
    ],
    responses: { 200: { description: 'What was removed (files and links counted) and the commit.', schema: 'FileRemoveResult' } },
    errors: [400, 404, 409],
  });

  app.post(`${FILES}/edit`, async (c) => {
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const { scope, f } = caller(c, files);
    const body = await readJson(c, fileEditSchema);
    return c.json(f.edit(id, { path: body.path, oldText: body.oldText, newText: body.newText, ...(body.replaceAll !== undefined ? { replaceAll: body.replaceAll } : {}) }, scope) satisfies FileEditResult);
  });
  docs.add({
    method: 'post',
    path: `${FILES}/edit`,
    operationId: 'editFile',
    tags: ['files'],
    summary: 'Replace exact text in a file (one commit): no patterns, no regular expressions',
    description: 'oldText must occur exactly once unless replaceAll is true: no match is EDIT_NO_MATCH (409); several without replaceAll is EDIT_AMBIGUOUS (409), naming the count in details.matches.',
    body: 'FileEdit',
    responses: { 200: { description: 'How many replacements were made, and the commit.', schema: 'FileEditResult' } },
    errors: [404, 409],
  });

  app.get(`${FILES}/list`, (c) => {
    onlyQuery(c, ['path', 'recursive', 'limit']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c, '/');
    const recursive = boolQuery(c, 'recursive');
    const limit = intQuery(c, 'limit');
    const r = files.list(id, path, { ...(recursive !== undefined ? { recursive } : {}), ...(limit !== undefined ? { limit } : {}) }, callerScope(c));
    return c.json(r satisfies FileList);
  });
  docs.add({
    method: 'get',
    path: `${FILES}/list`,
    operationId: 'listFiles',
    tags: ['files'],
    summary: 'List a directory (dotfiles included, in name order; depth first with recursive=true)',
    description: 'A file or link lists as itself. truncated is true when limit cut the list short.',
    query: [
      { ...pathParam, description: `${pathParam.description} Default /.` },
      { name: 'recursive', description: 'true: everything below, depth first (default false).', type: 'boolean' },
      { name: 'limit', description: 'Entries at most: 1 to 10000 (default 1000).', type: 'integer' },
    ],
    responses: { 200: { description: 'The entries.', schema: 'FileList' } },
    errors: [400, 404, 409],
  });

  app.get(`${FILES}/stat`, (c) => {
    onlyQuery(c, ['path']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c);
    return c.json(files.stat(id, path, callerScope(c)) satisfies FileInfo);
  });
  docs.add({
    method: 'get',
    path: `${FILES}/stat`,
    operationId: 'statFile',
    tags: ['files'],
    summary: 'One entry: kind, mode, size, mtime, hash (a symlink is described, not followed)',
    query: [{ ...pathParam, required: true }],
    responses: { 200: { description: 'The entry.', schema: 'FileInfo' } },
    errors: [400, 404, 409],
  });

  app.post(`${FILES}/mkdir`, async (c) => {
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const { scope, f } = caller(c, files);
    const body = await readJson(c, fileMkdirSchema);
    return c.json(f.mkdir(id, body.path, { parents: body.parents === true }, scope) satisfies FileMkdirResult);
  });
  docs.add({
    method: 'post',
    path: `${FILES}/mkdir`,
    operationId: 'makeDirectory',
    tags: ['files'],
    summary: 'Create a directory (one commit); with parents, missing parents too and an existing directory is fine',
    body: 'FileMkdir',
    responses: { 200: { description: 'The directory and the commit (null when it already existed).', schema: 'FileMkdirResult' } },
    errors: [404, 409],
  });

  app.post(`${FILES}/move`, async (c) => {
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const { scope, f } = caller(c, files);
    const body = await readJson(c, fileMoveSchema);
    return c.json(f.move(id, body.from, body.to, { overwrite: body.overwrite === true }, scope) satisfies FileMoveResult);
  });
  docs.add({
    method: 'post',
    path: `${FILES}/move`,
    operationId: 'moveFile',
    tags: ['files'],
    summary: 'Move or rename a file, link or directory to exactly `to` (one commit)',
    description: 'An existing `to` is PATH_EXISTS (409) unless overwrite is true, which replaces a file or link; a directory at `to` is never replaced nor moved into.',
    body: 'FileMove',
    responses: { 200: { description: 'The move and the commit.', schema: 'FileMoveResult' } },
    errors: [404, 409],
  });

  app.get(`${FILES}/download`, (c) => {
    onlyQuery(c, ['path']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c, '/');
    const d = files.download(id, path, callerScope(c));
    const out = new PassThrough();
    // The web stream reports failures to the client (a cut response); nothing else may see them unhandled.
    out.on('error', () => undefined);
    d.pipe(out).catch((e: unknown) => {
      const err = apiError(e);
      if (err.code === 'INTERNAL') options.logger?.error({ requestId: c.get('requestId'), err: e }, 'download failed');
      out.destroy(err);
    });
    return c.body(webStreamOf(out), 200, { 'content-type': 'application/x-tar' });
  });
  docs.add({
    method: 'get',
    path: `${FILES}/download`,
    operationId: 'downloadFiles',
    tags: ['files'],
    summary: 'A directory (or one file) as a tar stream',
    description: 'Names are relative to the directory (a file by its own name); modes, mtimes and symlinks are kept. A failure after the first byte cuts the response short.',
    query: [{ ...pathParam, description: `${pathParam.description} Default /.` }],
    responses: { 200: { description: 'The tar stream.', contentType: 'application/x-tar' } },
    errors: [400, 404, 409],
  });

  app.put(`${FILES}/upload`, async (c) => {
    onlyQuery(c, ['path']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c, '/');
    const { scope, f } = caller(c, files);
    f.vaultOf(id, scope);
    const r = await f.upload(id, path, limitedBodyStream(c, maxTarBytes), scope);
    return c.json({ path: r.path, files: r.files, dirs: r.dirs, symlinks: r.symlinks, bytes: r.bytes, commit: r.commit?.id ?? null, skipped: r.skipped, outside: r.outside } satisfies FileUploadResult);
  });
  docs.add({
    method: 'put',
    path: `${FILES}/upload`,
    operationId: 'uploadFiles',
    tags: ['files'],
    summary: 'Import a tar stream (ustar, pax, GNU; not gzipped) into a directory, as one commit',
    description: `At most ${maxTarBytes} bytes by default. Absolute names, '..', NUL and entries below a symlink fail the whole upload (400, nothing changed); hard links, devices and fifos are skipped and listed; symlinks are stored as links, never followed, and those pointing outside the upload are listed in outside.`,
    query: [{ ...pathParam, description: `${pathParam.description} Default /.` }],
    rawBody: { contentType: 'application/x-tar', description: 'The tar stream.' },
    responses: { 200: { description: 'What was imported, and the commit.', schema: 'FileUploadResult' } },
    errors: [400, 404, 409, 413],
  });

  app.get(`${FILES}/watch`, (c) => {
    onlyQuery(c, ['path']);
    const id = sandboxIdParam(c);
    const path = pathQuery(c, '/');
    const watch = files.watch(id, path, callerScope(c), options.watchIntervalMs !== undefined ? { intervalMs: options.watchIntervalMs } : {});
    const requestId = c.get('requestId');
    const stop = new AbortController();
    const encoder = new TextEncoder();
    let keepalive: ReturnType<typeof setInterval> | undefined;
    const finish = () => {
      stop.abort();
      clearInterval(keepalive);
      c.req.raw.signal.removeEventListener('abort', finish);
    };
    c.req.raw.signal.addEventListener('abort', finish);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = (text: string): void => {
          if (stop.signal.aborted) return;
          // A client that stops reading is dropped before its backlog grows without bound.
          if ((controller.desiredSize ?? 0) < -MAX_WATCH_BACKLOG) {
            finish();
            controller.error(new Error('the watch client is not reading'));
            return;
          }
          controller.enqueue(encoder.encode(text));
        };
        send(sseEvent('ready', { path: watch.path, commit: watch.commit }));
        keepalive = setInterval(() => send(': keepalive\n\n'), keepaliveMs);
        void (async () => {
          try {
            for await (const batch of watch.changes(stop.signal)) for (const change of batch) send(sseEvent('change', change));
          } catch (e) {
            const err = apiError(e);
            if (err.code === 'INTERNAL') options.logger?.error({ requestId, err: e }, 'watch failed');
            send(sseEvent('error', err.toEnvelope(requestId)));
          }
          if (!stop.signal.aborted) {
            finish();
            controller.close();
          }
        })();
      },
      cancel() {
        finish();
      },
    });
    return c.body(body, 200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  });
  docs.add({
    method: 'get',
    path: `${FILES}/watch`,
    operationId: 'watchFiles',
    tags: ['files'],
    summary: 'Server-Sent Events for files created, modified and deleted below a directory',
    description:
      'First `event: ready` with {path, commit} (the head the watch starts from), then `event: change` with {path, kind: created|modified|deleted, commit} as commits land on the sandbox\'s vault (polled every ~150 ms), and a `: keepalive` comment every 15 s. The stream ends with `event: error` (the error envelope) when the sandbox is destroyed.',
    query: [{ ...pathParam, description: `${pathParam.description} Default /.` }],
    responses: { 200: { description: 'The event stream.', contentType: 'text/event-stream' } },
    errors: [400, 404, 409],
  });
}
