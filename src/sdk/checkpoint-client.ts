// Checkpoints of a sandbox's vault over the API: save (O(1), a named pointer to the head), list,
// restore (a new commit with the checkpoint's files; the state before stays reachable), delete.
import type { CheckpointList, CheckpointRestoreResult, CheckpointWire } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions } from './api-client.ts';
import { CorralApiError } from './sdk-errors.ts';

export type Checkpoint = CheckpointWire;
export type { CheckpointRestoreResult };

export interface CheckpointSaveOptions extends CallOptions {
  /** 1-128 of A-Z a-z 0-9 _ - . :, not starting with '-' or '.', not HEAD (default: cp-<ISO time>). */
  name?: string;
  /** A note kept with it, printable text up to 2000 characters (default empty). */
  message?: string;
}

export interface CheckpointRestoreOptions extends CallOptions {
  /** Cancel the sandbox's running execs first (default false: a restore while execs run is SANDBOX_STATE, with their ids in details.execs). */
  cancelExecs?: boolean;
}

function nameParam(name: string): string {
  if (typeof name !== 'string' || name === '') throw new CorralApiError('INVALID_ARGUMENT', 'give the checkpoint name', {});
  return encodeURIComponent(name);
}

/** A sandbox's checkpoints. */
export class SandboxCheckpoints {
  readonly #client: ApiClient;
  readonly #base: string;

  constructor(client: ApiClient, sandboxId: string) {
    this.#client = client;
    this.#base = `/v1/sandboxes/${sandboxId}/checkpoints`;
  }

  /** Saves a checkpoint of the vault's head now. CONFLICT when the name is taken. */
  save(options: CheckpointSaveOptions = {}): Promise<Checkpoint> {
    const { name, message, ...call } = options;
    return this.#client.json<Checkpoint>({ method: 'POST', path: this.#base, json: { ...(name !== undefined ? { name } : {}), ...(message !== undefined ? { message } : {}) } }, call);
  }

  /** The checkpoints, oldest first. */
  async list(options: CallOptions = {}): Promise<Checkpoint[]> {
    return (await this.#client.json<CheckpointList>({ method: 'GET', path: this.#base }, options)).checkpoints;
  }

  /**
   * Makes the vault's files the checkpoint's, as a new commit: `commit` is the new head, `previous`
   * the head before (save or restore it to undo). SANDBOX_STATE while execs run, unless cancelExecs.
   */
  async restore(name: string, options: CheckpointRestoreOptions = {}): Promise<CheckpointRestoreResult> {
    const { cancelExecs, ...call } = options;
    return this.#client.json<CheckpointRestoreResult>({ method: 'POST', path: `${this.#base}/${nameParam(name)}/restore`, json: cancelExecs ? { cancelExecs: true } : {} }, call);
  }

  /** Deletes a checkpoint (the pointer: its commit stays in the history); resolves with it. */
  async delete(name: string, options: CallOptions = {}): Promise<Checkpoint> {
    return this.#client.json<Checkpoint>({ method: 'DELETE', path: `${this.#base}/${nameParam(name)}` }, options);
  }
}
