// The one registry of error codes. Each code has an HTTP status (for the API) and a CLI exit code;
// the `satisfies` clause makes the compiler check that every code has both.

export const errorCodes = {
  INVALID_ARGUMENT: { status: 400, exit: 2 },
  INVALID_PATH: { status: 400, exit: 2 },
  INVALID_NAME: { status: 400, exit: 2 },
  NO_VAULT_SELECTED: { status: 400, exit: 2 },
  VAULT_NOT_FOUND: { status: 404, exit: 3 },
  VAULT_EXISTS: { status: 409, exit: 4 },
  PATH_NOT_FOUND: { status: 404, exit: 3 },
  PATH_EXISTS: { status: 409, exit: 4 },
  NOT_A_DIRECTORY: { status: 409, exit: 4 },
  IS_A_DIRECTORY: { status: 409, exit: 4 },
  IS_A_SYMLINK: { status: 409, exit: 4 },
  DIRECTORY_NOT_EMPTY: { status: 409, exit: 4 },
  SYMLINK_LOOP: { status: 409, exit: 4 },
  REF_NOT_FOUND: { status: 404, exit: 3 },
  CHECKPOINT_NOT_FOUND: { status: 404, exit: 3 },
  CHECKPOINT_EXISTS: { status: 409, exit: 4 },
  TAG_NOT_FOUND: { status: 404, exit: 3 },
  META_NOT_FOUND: { status: 404, exit: 3 },
  CONFLICT: { status: 409, exit: 4 },
  CONFIRMATION_REQUIRED: { status: 400, exit: 2 },
  QUOTA_EXCEEDED: { status: 413, exit: 5 },
  PAYLOAD_TOO_LARGE: { status: 413, exit: 5 },
  STORAGE_FULL: { status: 507, exit: 6 },
  STORAGE_READ_ONLY: { status: 503, exit: 6 },
  STORAGE_BUSY: { status: 503, exit: 6 },
  STORAGE_CORRUPT: { status: 500, exit: 6 },
  HOST_IO_ERROR: { status: 500, exit: 6 },
  /** A host path Corral refuses to write through (a symlink in the way of an export). */
  UNSAFE_HOST_PATH: { status: 409, exit: 4 },
  BUNDLE_INVALID: { status: 400, exit: 2 },
  /** Exec: the policy file or preset is malformed or unknown. */
  POLICY_INVALID: { status: 400, exit: 2 },
  /** Exec: the policy refused the command (the exec result says why; this code is for APIs that must throw). */
  POLICY_DENIED: { status: 403, exit: 125 },
  /** Exec: a requested limit or isolation the backend cannot enforce, without an explicit best-effort opt-in. */
  LIMIT_UNENFORCEABLE: { status: 422, exit: 125 },
  /** Exec: the requested backend is missing or unusable on this machine (`corral doctor` says why). */
  BACKEND_UNAVAILABLE: { status: 503, exit: 125 },
  /** Exec: the sandbox could not be set up or the command could not be started. */
  EXEC_FAILED: { status: 500, exit: 125 },
  APPROVAL_NOT_FOUND: { status: 404, exit: 3 },
  /** The approval was already answered, used or expired. */
  APPROVAL_NOT_PENDING: { status: 409, exit: 4 },
  CHECKOUT_NOT_FOUND: { status: 404, exit: 3 },
  /** API: no route matches the request's path (check the URL against GET /openapi.json). */
  NOT_FOUND: { status: 404, exit: 3 },
  /** API: the path exists but not with this HTTP method (the response's Allow header lists the methods). */
  METHOD_NOT_ALLOWED: { status: 405, exit: 2 },
  /** Daemon: another daemon already listens on the socket (stop it, or use another $CORRAL_HOME). */
  DAEMON_ALREADY_RUNNING: { status: 409, exit: 4 },
  /** API: no sandbox with this id or name, or it expired (GET /v1/sandboxes lists the live ones). */
  SANDBOX_NOT_FOUND: { status: 404, exit: 3 },
  /** API: the sandbox is not in a state that allows this (e.g. exec in a destroyed sandbox). */
  SANDBOX_STATE: { status: 409, exit: 4 },
  /** API: no exec with this id. */
  EXEC_NOT_FOUND: { status: 404, exit: 3 },
  /** API: no API key, or an unknown or revoked one (TCP needs a key: corral keys create). */
  UNAUTHENTICATED: { status: 401, exit: 2 },
  /** API: the API key lacks the scope this route needs (the details name it). */
  PERMISSION_DENIED: { status: 403, exit: 2 },
  /** API: the exec is not in a state that allows this (e.g. stdin to an exec that ended). */
  EXEC_STATE: { status: 409, exit: 4 },
  /** API keys: no key with this id (corral keys list shows them). */
  KEY_NOT_FOUND: { status: 404, exit: 3 },
  /** Daemon: `corral daemon start` could not start it, or it exited or did not answer (the message shows the log's last lines). */
  DAEMON_START_FAILED: { status: 500, exit: 1 },
  /** Files: the text an edit replaces does not occur in the file (matching is exact). */
  EDIT_NO_MATCH: { status: 409, exit: 4 },
  /** Files: the text an edit replaces occurs more than once and replaceAll was not set (details.matches is the count). */
  EDIT_AMBIGUOUS: { status: 409, exit: 4 },
  /** API: no process with this id in the caller's sandboxes (or it was removed). */
  PROCESS_NOT_FOUND: { status: 404, exit: 3 },
  /** Daemon: no daemon answers on the socket (corral daemon start runs one). */
  DAEMON_NOT_RUNNING: { status: 503, exit: 1 },
  INTERNAL: { status: 500, exit: 1 },
} as const satisfies Record<string, { status: number; exit: number }>;

export type ErrorCode = keyof typeof errorCodes;

export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; details: Record<string, unknown>; requestId?: string };
}

export class CorralError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'CorralError';
    this.code = code;
    this.details = details;
  }

  toEnvelope(requestId?: string): ErrorEnvelope {
    return { error: { code: this.code, message: this.message, details: this.details, ...(requestId ? { requestId } : {}) } };
  }
}

export function isCorralError(e: unknown, code?: ErrorCode): e is CorralError {
  return e instanceof CorralError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a CorralError, keeping the original as the cause. */
export function toCorralError(e: unknown): CorralError {
  if (e instanceof CorralError) return e;
  const err = e as { code?: string; errcode?: number; message?: string };
  const msg = err?.message ?? String(e);
  // SQLite's primary result codes (errcode & 0xff): 5 BUSY, 6 LOCKED, 8 READONLY, 10 IOERR, 11 CORRUPT, 13 FULL, 14 CANTOPEN, 26 NOTADB.
  const primary = typeof err?.errcode === 'number' ? err.errcode & 0xff : -1;
  if (primary === 13 || /database or disk is full/.test(msg))
    return new CorralError('STORAGE_FULL', 'the disk holding the Corral database is full: free space, then retry (nothing was changed)', {}, e);
  if (primary === 8 || /readonly database|EROFS/.test(msg))
    return new CorralError('STORAGE_READ_ONLY', 'the Corral database is read-only: check the permissions and mount of $CORRAL_HOME (nothing was changed)', {}, e);
  if (primary === 5 || primary === 6)
    return new CorralError('STORAGE_BUSY', 'the Corral database stayed locked by another process: retry', {}, e);
  if (primary === 11 || primary === 26)
    return new CorralError('STORAGE_CORRUPT', `the Corral database is damaged: ${msg}`, {}, e);
  if (primary === 14)
    return new CorralError('HOST_IO_ERROR', `cannot open the Corral database (${msg}): check that $CORRAL_HOME exists and that its folder and files are readable and writable`, { errcode: err.errcode }, e);
  if (primary === 10)
    return new CorralError('HOST_IO_ERROR', `the disk under the Corral database failed a read or write (${msg}): check the disk, then retry`, { errcode: err.errcode }, e);
  if (err?.code === 'ENOSPC') return new CorralError('STORAGE_FULL', `no space left on the host disk: ${msg}`, {}, e);
  if (typeof err?.code === 'string' && /^E[A-Z]+$/.test(err.code))
    return new CorralError('HOST_IO_ERROR', msg, { errno: err.code }, e);
  return new CorralError('INTERNAL', msg, {}, e);
}
