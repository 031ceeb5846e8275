// The SDK's errors: CorralApiError for every failed call (the daemon's error envelope, or a failure
// on the client's side of the wire), and CommandExitError for a command that ran but did not succeed
// (thrown only by the checking variants: a non-zero exit is data, not an error).
import type { ExecResultEnvelope } from '../protocol/api-schemas.ts';
import type { ErrorCode } from '../protocol/errors.ts';

/**
 * Codes the SDK gives failures that have no answer from the daemon:
 * - `UNAVAILABLE`: the daemon could not be reached (not running, wrong socket or URL, refused), or
 *   the connection dropped before the answer was complete.
 * - `TIMEOUT`: the call's `timeoutMs` passed before the answer came (an exec handle's `wait` too).
 * - `BAD_RESPONSE`: the answer is not what the daemon sends (not JSON, no error envelope): usually a
 *   proxy or another server at that address.
 */
export type ClientErrorCode = 'UNAVAILABLE' | 'TIMEOUT' | 'BAD_RESPONSE';

/** A code of the daemon's error registry, or one of the SDK's own (ClientErrorCode). */
export type CorralErrorCode = ErrorCode | ClientErrorCode;

export interface CorralApiErrorInit {
  /** The HTTP status; null when no answer came (UNAVAILABLE, TIMEOUT). */
  status?: number | null;
  details?: Record<string, unknown>;
  requestId?: string | null;
  cause?: unknown;
}

/** A call that failed: `code` says why (a registry code, or UNAVAILABLE, TIMEOUT, BAD_RESPONSE). */
export class CorralApiError extends Error {
  /** The error code (a newer daemon may send codes this SDK does not list). */
  readonly code: CorralErrorCode | (string & {});
  /** The HTTP status the daemon answered with; null when there was no answer. */
  readonly status: number | null;
  /** Machine-readable facts from the daemon (which field, which limit, which scope, ...). */
  readonly details: Record<string, unknown>;
  /** The request id (the daemon's log names it); null when there was no answer. */
  readonly requestId: string | null;

  constructor(code: CorralErrorCode | (string & {}), message: string, init: CorralApiErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'CorralApiError';
    this.code = code;
    this.status = init.status ?? null;
    this.details = init.details ?? {};
    this.requestId = init.requestId ?? null;
  }
}

/** Whether `e` is a CorralApiError, and (when given) one with this code or one of these codes. */
export function isCorralApiError(e: unknown, code?: CorralErrorCode | readonly CorralErrorCode[]): e is CorralApiError {
  if (!(e instanceof CorralApiError)) return false;
  if (code === undefined) return true;
  return typeof code === 'string' ? e.code === code : (code as readonly string[]).includes(e.code);
}

/** Whether `e` says the object does not exist, or belongs to another tenant (any 404 code). */
export function isNotFound(e: unknown): e is CorralApiError {
  return e instanceof CorralApiError && e.status === 404;
}

/** Whether the command did not succeed: not completed, timed out, killed, or a non-zero exit. */
export function commandFailed(r: ExecResultEnvelope): boolean {
  return r.status !== 'completed' || r.timedOut || r.exitCode !== 0;
}

function describe(r: ExecResultEnvelope): string {
  if (r.status === 'denied') return `the policy denied it: ${r.decision?.reason ?? 'no reason given'}`;
  if (r.status === 'pending') return `it waits for approval ${r.approval?.id ?? ''}: ${r.decision?.reason ?? ''}`.trimEnd();
  if (r.status === 'failed') return `it failed to run: ${r.error?.message ?? 'no reason given'}`;
  if (r.timedOut) return `it timed out after ${r.limits?.timeoutMs ?? r.durationMs} ms`;
  if (r.exitCode === null) return `it was killed by ${r.signal ?? 'a signal'}`;
  const tail = r.encoding === 'utf8' ? r.stderr.trim().split('\n').slice(-3).join('\n').slice(-500) : '';
  return `it exited with code ${r.exitCode}${tail ? `: ${tail}` : ''}`;
}

/** A command that ran (or was refused) without succeeding; `result` is its whole result envelope. */
export class CommandExitError extends Error {
  readonly result: ExecResultEnvelope;

  constructor(result: ExecResultEnvelope) {
    const cmd = result.command.shell ?? result.command.argv.join(' ');
    super(`command ${JSON.stringify(cmd.slice(0, 200))} did not succeed: ${describe(result)}`);
    this.name = 'CommandExitError';
    this.result = result;
  }

  /** The exit code, or null when it did not exit on its own (killed, timed out, never started). */
  get exitCode(): number | null {
    return this.result.exitCode;
  }

  get stdout(): string {
    return this.result.stdout;
  }

  get stderr(): string {
    return this.result.stderr;
  }
}
