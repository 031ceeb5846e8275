// The store of one Corral home: vaults, commits, checkpoints and the audit log over one SQLite
// database. Every change goes through write() (one transaction, one audit record) and every
// change to a vault's files through mutate() (a new commit, compare-and-swap on the head).
import { join } from 'node:path';
import { homedir } from 'node:os';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { validateVaultName } from '../protocol/paths.ts';
import { Database, type DatabaseOptions } from './database.ts';
import { EMPTY_TREE, ObjectStore, sha256 } from './object-store.ts';
import { AuditLog } from './audit-log.ts';
import { TreeEditor } from './tree-editor.ts';

export type Origin = 'cli' | 'api' | 'exec' | 'restore' | 'import';

/** Who is acting: recorded in every commit and audit record. */
export interface Caller {
  actor: string;
  origin: Origin;
}

export interface Commit {
  id: string;
  parent: string | null;
  tree: string;
  vault: string;
  message: string;
  origin: Origin;
  actor: string;
  createdAt: number;
  /** Bytes of all files at this commit. */
  size: number;
  /** Files and symlinks at this commit. */
  files: number;
}

export interface Quota {
  maxBytes: number | null;
  maxFiles: number | null;
  maxFileSize: number | null;
}

export interface Vault {
  id: number;
  name: string;
  head: string;
  parent: string | null;
  forkedFrom: string | null;
  createdAt: number;
  quota: Quota;
}

export interface Checkpoint {
  name: string;
  commit: string;
  message: string;
  createdAt: number;
}

/** What an operation records in the audit log. */
export interface Operation {
  op: string;
  target?: string | null;
  details?: Record<string, unknown>;
}

export interface MutateOptions extends Operation {
  message: string;
  /** Overrides the caller's origin for this commit (restore, import). */
  origin?: Origin;
  /** Make a commit even when the tree did not change. */
  allowEmpty?: boolean;
}

interface VaultRow {
  id: number;
  name: string;
  head: string;
  parent_name: string | null;
  forked_from: string | null;
  created_at: number;
  quota_bytes: number | null;
  quota_files: number | null;
  quota_file_size: number | null;
}

/** A commits row as SQLite returns it. */
export interface CommitRow {
  id: string;
  parent: string | null;
  tree: string;
  vault: string;
  message: string;
  origin: Origin;
  actor: string;
  created_at: number;
  size: number;
  files: number;
}

function toVault(r: VaultRow): Vault {
  return {
    id: r.id,
    name: r.name,
    head: r.head,
    parent: r.parent_name,
    forkedFrom: r.forked_from,
    createdAt: r.created_at,
    quota: { maxBytes: r.quota_bytes, maxFiles: r.quota_files, maxFileSize: r.quota_file_size },
  };
}

function toCommit(r: CommitRow): Commit {
  return {
    id: r.id,
    parent: r.parent,
    tree: r.tree,
    vault: r.vault,
    message: r.message,
    origin: r.origin,
    actor: r.actor,
    createdAt: r.created_at,
    size: r.size,
    files: r.files,
  };
}

/**
 * The CTE `reach(id)`: every commit reachable by parents from the ids in the JSON array bound to
 * its one parameter, seeds included, each once.
 */
export const REACH = `WITH RECURSIVE reach(id) AS (
  SELECT value FROM json_each(?)
  UNION SELECT c.parent FROM commits c JOIN reach r ON c.id = r.id WHERE c.parent IS NOT NULL)`;

/** A commit's id: the hash of its fields, so the same history has the same ids in every home. */
export function commitId(c: Pick<CommitRow, 'parent' | 'tree' | 'vault' | 'message' | 'origin' | 'actor' | 'created_at'>): string {
  return sha256(JSON.stringify([c.parent, c.tree, c.vault, c.message, c.origin, c.actor, c.created_at]));
}

export function defaultHome(): string {
  return process.env.CORRAL_HOME || join(homedir(), '.corral');
}

export interface StoreOptions extends DatabaseOptions {
  now?: () => number;
}

export class CorralStore {
  readonly db: Database;
  readonly objects: ObjectStore;
  readonly audit: AuditLog;
  readonly home: string;
  readonly now: () => number;

  constructor(home: string, options: StoreOptions = {}) {
    this.home = home;
    this.now = options.now ?? Date.now;
    this.db = new Database(join(home, 'corral.db'), options);
    this.objects = new ObjectStore(this.db, this.now);
    this.audit = new AuditLog(this.db, this.now);
  }

  close(): void {
    this.db.close();
  }

  // ---- vaults -------------------------------------------------------------------------------

  findVault(name: string): Vault | undefined {
    const row = this.db.get<VaultRow>('SELECT * FROM vaults WHERE name = ?', name);
    return row && toVault(row);
  }

  getVault(name: string): Vault {
    validateVaultName(name);
    const v = this.findVault(name);
    if (!v) throw new CorralError('VAULT_NOT_FOUND', `no vault named '${name}': list them with 'corral vault list' or create it with 'corral vault create ${name}'`, { vault: name });
    return v;
  }

  /** The root tree of a vault's head, in one query: the hot path of every read. */
  headTree(name: string): string {
    const row = this.db.get<{ tree: string }>('SELECT c.tree AS tree FROM vaults v JOIN commits c ON c.id = v.head WHERE v.name = ?', name);
    return row ? row.tree : this.getCommit(this.getVault(name).head).tree;
  }

  listVaults(): Vault[] {
    return this.db.all<VaultRow>('SELECT * FROM vaults ORDER BY name').map(toVault);
  }

  /** Inserts a vault row whose head is `head`, or a fresh empty commit. Call inside write(). */
  insertVault(caller: Caller, name: string, fields: { head?: string; parent?: string | null; forkedFrom?: string | null; quota?: Quota } = {}): Vault {
    validateVaultName(name);
    if (this.findVault(name)) throw new CorralError('VAULT_EXISTS', `a vault named '${name}' already exists: pick another name or use it with 'corral vault use ${name}'`, { vault: name });
    const head = fields.head ?? this.insertCommit({ parent: null, tree: EMPTY_TREE, vault: name, message: 'create vault', origin: caller.origin, actor: caller.actor, size: 0, files: 0 }).id;
    this.db.run(
      'INSERT INTO vaults(name, head, parent_name, forked_from, created_at, quota_bytes, quota_files, quota_file_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      name, head, fields.parent ?? null, fields.forkedFrom ?? null, this.now(),
      fields.quota?.maxBytes ?? null, fields.quota?.maxFiles ?? null, fields.quota?.maxFileSize ?? null,
    );
    return this.getVault(name);
  }

  // ---- commits ------------------------------------------------------------------------------

  insertCommit(c: Omit<Commit, 'id' | 'createdAt'> & { createdAt?: number }): Commit {
    const createdAt = c.createdAt ?? this.now();
    const id = commitId({ ...c, created_at: createdAt });
    this.db.run(
      'INSERT OR IGNORE INTO commits(id, parent, tree, vault, message, origin, actor, created_at, size, files) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      id, c.parent, c.tree, c.vault, c.message, c.origin, c.actor, createdAt, c.size, c.files,
    );
    return { ...c, id, createdAt };
  }

  findCommit(id: string): Commit | undefined {
    const row = this.db.get<CommitRow>('SELECT * FROM commits WHERE id = ?', id);
    return row && toCommit(row);
  }

  getCommit(id: string): Commit {
    const c = this.findCommit(id);
    if (!c) throw new CorralError('REF_NOT_FOUND', `no commit ${id}`, { ref: id });
    return c;
  }

  /** Commits of the vault's history (see inHistory) whose id starts with `prefix`: two at most, enough to tell ambiguity. */
  historyByPrefix(vault: Vault, prefix: string): string[] {
    if (!/^[0-9a-f]{4,64}$/.test(prefix)) return [];
    return this.db.all<{ id: string }>(`${REACH} SELECT id FROM reach WHERE id >= ? AND id < ? || 'g' LIMIT 2`, JSON.stringify(this.historyRefs(vault)), prefix, prefix).map((r) => r.id);
  }

  /** Whether commit `id` is in the vault's history: its head, a checkpoint, or an ancestor of one. */
  inHistory(vault: Vault, id: string): boolean {
    return this.db.get(`${REACH} SELECT 1 AS x FROM reach WHERE id = ? LIMIT 1`, JSON.stringify(this.historyRefs(vault)), id) !== undefined;
  }

  /** The refs that keep a vault's history alive: its head and its checkpoints. */
  historyRefs(vault: Vault): string[] {
    return [vault.head, ...this.listCheckpoints(vault).map((c) => c.commit)];
  }

  /** Moves a vault's head from `expected` to `next`, or fails with CONFLICT when someone moved it first. */
  swapHead(vaultId: number, expected: string, next: string): void {
    const r = this.db.run('UPDATE vaults SET head = ? WHERE id = ? AND head = ?', next, vaultId, expected);
    if (r.changes !== 1)
      throw new CorralError('CONFLICT', 'the vault changed while this operation ran: retry it', { expected, next });
  }

  /**
   * A commit named by `ref`: HEAD, HEAD~N (N commits back), a checkpoint name, or a commit id
   * (a unique prefix of at least 4 hex digits).
   */
  resolveRef(vault: Vault, ref: string): Commit {
    const back = /^HEAD(?:~(\d+)|(\^+))?$/.exec(ref);
    if (back) {
      let steps = back[1] !== undefined ? Number(back[1]) : (back[2]?.length ?? 0);
      let c = this.getCommit(vault.head);
      while (steps-- > 0) {
        if (!c.parent) throw new CorralError('REF_NOT_FOUND', `${ref} goes back past the first commit of '${vault.name}'`, { ref });
        c = this.getCommit(c.parent);
      }
      return c;
    }
    const cp = this.findCheckpoint(vault, ref);
    if (cp) return this.getCommit(cp.commit);
    // Commit ids name objects of the whole home: only those in this vault's history count.
    const ids = this.historyByPrefix(vault, ref.toLowerCase());
    if (ids.length > 1) throw new CorralError('REF_NOT_FOUND', `commit prefix ${ref} is ambiguous: give more digits`, { ref });
    if (ids.length === 1) return this.getCommit(ids[0]!);
    throw new CorralError('REF_NOT_FOUND', `no checkpoint or commit '${ref}' in vault '${vault.name}': see 'corral checkpoint list' or 'corral log'`, { ref, vault: vault.name });
  }

  // ---- checkpoints --------------------------------------------------------------------------

  listCheckpoints(vault: Vault): Checkpoint[] {
    return this.db
      .all<{ name: string; commit_id: string; message: string; created_at: number }>('SELECT * FROM checkpoints WHERE vault_id = ? ORDER BY created_at, name', vault.id)
      .map((r) => ({ name: r.name, commit: r.commit_id, message: r.message, createdAt: r.created_at }));
  }

  findCheckpoint(vault: Vault, name: string): Checkpoint | undefined {
    const r = this.db.get<{ name: string; commit_id: string; message: string; created_at: number }>('SELECT * FROM checkpoints WHERE vault_id = ? AND name = ?', vault.id, name);
    return r && { name: r.name, commit: r.commit_id, message: r.message, createdAt: r.created_at };
  }

  // ---- settings -----------------------------------------------------------------------------

  getSetting(key: string): string | undefined {
    return this.db.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', key)?.value;
  }

  setSetting(key: string, value: string | null): void {
    if (value === null) this.db.run('DELETE FROM settings WHERE key = ?', key);
    else this.db.run('INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, value);
  }

  // ---- transactions -------------------------------------------------------------------------

  /**
   * Runs `fn` in one write transaction together with its audit record. When `fn` fails, the
   * transaction is rolled back and the failure is recorded on its own.
   */
  write<T>(caller: Caller, vault: string | null, operation: Operation, fn: () => T, detailsOf?: (value: T) => Record<string, unknown>): T {
    try {
      return this.db.transaction(() => {
        const value = fn();
        this.audit.append({
          actor: caller.actor,
          vault,
          op: operation.op,
          target: operation.target ?? null,
          details: { origin: caller.origin, ...operation.details, ...detailsOf?.(value) },
          result: 'ok',
        });
        return value;
      });
    } catch (e) {
      const err = toCorralError(e);
      if (err.code !== 'STORAGE_FULL' && err.code !== 'STORAGE_READ_ONLY' && err.code !== 'STORAGE_BUSY') {
        try {
          this.audit.append({ actor: caller.actor, vault, op: operation.op, target: operation.target ?? null, details: { origin: caller.origin, ...operation.details, message: err.message }, result: `error:${err.code}` });
        } catch {
          // The failure itself is what the caller needs to see; a failed audit append changes nothing.
        }
      }
      throw err;
    }
  }

  /**
   * Makes `root` the vault's new head (a commit on top of `head`), checking quotas; returns null
   * when nothing changed. Call inside write().
   */
  advanceHead(caller: Caller, vault: Vault, head: Commit, root: RootState, options: Pick<MutateOptions, 'message' | 'origin' | 'allowEmpty'>, now = this.now()): Commit | null {
    if (root.hash === head.tree && !options.allowEmpty) return null;
    checkQuota(vault, head, root);
    const commit = this.insertCommit({ parent: head.id, tree: root.hash, vault: vault.name, message: options.message, origin: options.origin ?? caller.origin, actor: caller.actor, createdAt: now, size: root.size, files: root.files });
    this.swapHead(vault.id, head.id, commit.id);
    return commit;
  }

  /**
   * Changes a vault's files: `fn` edits the head tree; the result becomes one new commit and the
   * vault's head moves to it (compare-and-swap). Quotas are checked here, for every write path.
   */
  mutate<T>(caller: Caller, vaultName: string, options: MutateOptions, fn: (editor: TreeEditor, vault: Vault) => T): { value: T; commit: Commit | null } {
    let commit: Commit | null = null;
    const value = this.write(
      caller,
      vaultName,
      options,
      () => {
        const vault = this.getVault(vaultName);
        const head = this.getCommit(vault.head);
        const now = this.now();
        const editor = new TreeEditor(this.objects, head.tree, now, { maxFileSize: vault.quota.maxFileSize });
        const result = fn(editor, vault);
        commit = this.advanceHead(caller, vault, head, editor.flush(), options, now);
        return result;
      },
      () => ({ commit: commit?.id ?? null }),
    );
    return { value, commit };
  }
}

/** The totals and root of a tree that is to become a vault's head. */
export interface RootState {
  hash: string;
  size: number;
  files: number;
}

function checkQuota(vault: Vault, before: Commit, after: { size: number; files: number }): void {
  const { maxBytes, maxFiles } = vault.quota;
  // A change that does not grow usage passes even over the limit, so an over-quota vault can be cleaned up.
  if (maxBytes !== null && after.size > maxBytes && after.size > before.size)
    throw new CorralError('QUOTA_EXCEEDED', `vault '${vault.name}' would hold ${after.size} bytes, over its quota of ${maxBytes}: delete files or raise it with 'corral quota set --max-bytes N' (nothing was changed)`, {
      quota: 'maxBytes',
      limit: maxBytes,
      wouldBe: after.size,
    });
  if (maxFiles !== null && after.files > maxFiles && after.files > before.files)
    throw new CorralError('QUOTA_EXCEEDED', `vault '${vault.name}' would hold ${after.files} files, over its quota of ${maxFiles}: delete files or raise it with 'corral quota set --max-files N' (nothing was changed)`, {
      quota: 'maxFiles',
      limit: maxFiles,
      wouldBe: after.files,
    });
}
