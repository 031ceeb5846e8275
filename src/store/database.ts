// Opens the one SQLite database of a Corral home, applies the schema migrations and offers
// cached prepared statements and transactions.
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CorralError, toCorralError } from '../protocol/errors.ts';

/** Each entry moves the schema one version up; never edit a released entry, append a new one. */
// Tables of small rows keyed by their natural key are WITHOUT ROWID (one b-tree, not two: a page
// less to write per commit); tables of large rows (blobs, trees) keep a rowid, as SQLite advises.
const migrations: string[] = [
  `
  CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE trees (
    hash TEXT PRIMARY KEY,
    entries TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE commits (
    id TEXT PRIMARY KEY,
    parent TEXT,
    tree TEXT NOT NULL,
    vault TEXT NOT NULL,
    message TEXT NOT NULL,
    origin TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE vaults (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    head TEXT NOT NULL REFERENCES commits(id),
    parent_name TEXT,
    forked_from TEXT,
    created_at INTEGER NOT NULL,
    quota_bytes INTEGER,
    quota_files INTEGER,
    quota_file_size INTEGER
  );
  CREATE TABLE checkpoints (
    vault_id INTEGER NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    commit_id TEXT NOT NULL REFERENCES commits(id),
    message TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (vault_id, name)
  ) WITHOUT ROWID;
  CREATE TABLE tags (
    vault_id INTEGER NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (vault_id, path, tag)
  ) WITHOUT ROWID;
  CREATE INDEX tags_by_tag ON tags(vault_id, tag);
  CREATE TABLE path_meta (
    vault_id INTEGER NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (vault_id, path, key)
  ) WITHOUT ROWID;
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    vault TEXT,
    op TEXT NOT NULL,
    target TEXT,
    details TEXT NOT NULL,
    result TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'unicode61');
  CREATE TABLE fts_docs (hash TEXT PRIMARY KEY, docid INTEGER NOT NULL UNIQUE);
  `,
  // The full-text index holds each vault's head only (one document per vault and path), so a
  // search costs the size of that head, not of every version ever indexed. `scope` holds one token
  // naming the vault (v<id>), `path` is carried for the results; fts_paths maps a vault's paths to
  // documents and fts_state records the head tree each vault's index reflects.
  `
  DROP TABLE fts;
  DROP TABLE fts_docs;
  DELETE FROM settings WHERE key = 'fts_generation';
  CREATE VIRTUAL TABLE fts USING fts5(scope, path UNINDEXED, body, tokenize = 'unicode61');
  CREATE TABLE fts_paths (
    vault_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    docid INTEGER NOT NULL,
    PRIMARY KEY (vault_id, path)
  ) WITHOUT ROWID;
  CREATE TABLE fts_state (vault_id INTEGER PRIMARY KEY, tree TEXT NOT NULL);
  `,
  `
  -- Directories that hold a vault's files for ordinary tools: user checkouts and the warm checkout
  -- each vault keeps for execs. base is the commit the directory matched when last synced.
  CREATE TABLE checkouts (
    id INTEGER PRIMARY KEY,
    vault_id INTEGER NOT NULL,
    dir TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'warm')),
    base TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX checkouts_vault ON checkouts(vault_id);
  -- Commands the policy sent to a person. request and decision are JSON.
  CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    vault TEXT NOT NULL,
    command TEXT NOT NULL,
    request TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    requester TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'used')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    answered_by TEXT,
    answered_at INTEGER,
    answer_reason TEXT
  ) WITHOUT ROWID;
  CREATE INDEX approvals_state ON approvals(state, created_at);
  `,
  `
  -- Cross-process reader/writer leases on a vault's warm checkout (services/vault-locks.ts). A row is
  -- a holder (granted = 1) or a waiter in arrival order (seq); a holder is alive while its process
  -- (pid, its start time and the boot and pid namespace it ran in: host) is. dirty marks an
  -- exclusive holder writing into the checkout in place.
  CREATE TABLE leases (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')),
    granted INTEGER NOT NULL CHECK (granted IN (0, 1)),
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    host TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0 CHECK (dirty IN (0, 1)),
    acquired_at INTEGER NOT NULL,
    -- The exec's supervisor, when one runs: the lease is held while it lives too (it may outlive a
    -- killed Corral for a moment, and its command may still write).
    helper_pid INTEGER,
    helper_started TEXT
  );
  CREATE INDEX leases_key ON leases(key, seq);
  -- Keys whose dirty exclusive holder died: the next exclusive holder must rescan the checkout.
  CREATE TABLE lease_recovery (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    found_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- The daemon's sandboxes (services/sandbox-service.ts): a vault (usually its own fork) and how
  -- commands run there. limits, env and labels are JSON; times are ms since the epoch. Rows stay
  -- after destroy; a name is unique among the sandboxes not destroyed. The rowid orders lists by
  -- creation (ids made in the same millisecond do not sort by time).
  CREATE TABLE sandboxes (
    id TEXT PRIMARY KEY,
    name TEXT,
    vault TEXT NOT NULL,
    source_vault TEXT,
    forked INTEGER NOT NULL CHECK (forked IN (0, 1)),
    backend TEXT NOT NULL,
    policy TEXT NOT NULL,
    limits TEXT NOT NULL,
    network TEXT NOT NULL CHECK (network IN ('none', 'host')),
    env TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ready', 'paused', 'destroyed')),
    ttl_seconds INTEGER,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(name) WHERE name IS NOT NULL AND state != 'destroyed';
  CREATE INDEX sandboxes_state ON sandboxes(state, created_at);
  -- Execs run in sandboxes, with their corral.exec.result envelope (JSON; large: keeps a rowid).
  CREATE TABLE execs (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    state TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE INDEX execs_sandbox ON execs(sandbox_id, created_at);
  `,
  `
  -- The daemon's own state (issue 4). Tenants own API keys, sandboxes and the vaults made through
  -- them; tenant NULL is the machine's owner (the Unix socket, the CLI), who sees everything.
  CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    max_sandboxes INTEGER,
    max_concurrent_execs INTEGER,
    max_storage_bytes INTEGER,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- API keys (services/key-service.ts): only the sha256 of the secret is kept; scopes is a JSON array.
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT,
    scopes TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
  );
  ALTER TABLE vaults ADD COLUMN tenant TEXT;
  ALTER TABLE sandboxes ADD COLUMN tenant TEXT;
  ALTER TABLE sandboxes ADD COLUMN idle_timeout_seconds INTEGER;
  ALTER TABLE sandboxes ADD COLUMN last_active_at INTEGER;
  -- What its execs used, summed as each ends (the dashboard's resource use): count, CPU, peak memory.
  ALTER TABLE sandboxes ADD COLUMN execs_total INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sandboxes ADD COLUMN cpu_ms INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sandboxes ADD COLUMN peak_memory_bytes INTEGER;
  CREATE INDEX sandboxes_tenant ON sandboxes(tenant, state);
  -- Execs become live objects: a background one has no result until it ends. request is the plain
  -- request (JSON); supervisor_* identify the process tree for recovery after a daemon crash (pid,
  -- /proc start time, boot id). State: (created →) running, then completed | pending | denied | failed
  -- | lost; error (JSON) says why one that never ran failed.
  CREATE TABLE execs_v6 (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    state TEXT NOT NULL,
    background INTEGER NOT NULL DEFAULT 0,
    process_id TEXT,
    request TEXT,
    pid INTEGER,
    supervisor_pid INTEGER,
    supervisor_started TEXT,
    boot_id TEXT,
    result TEXT,
    error TEXT,
    stdout_bytes INTEGER NOT NULL DEFAULT 0,
    stderr_bytes INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
  );
  INSERT INTO execs_v6(id, sandbox_id, state, result, created_at, finished_at) SELECT id, sandbox_id, state, result, created_at, finished_at FROM execs;
  DROP TABLE execs;
  ALTER TABLE execs_v6 RENAME TO execs;
  CREATE INDEX execs_sandbox ON execs(sandbox_id, created_at);
  CREATE INDEX execs_running ON execs(state) WHERE state = 'running';
  CREATE INDEX execs_process ON execs(process_id, created_at) WHERE process_id IS NOT NULL;
  -- Output of execs, kept durably in chunks with byte offsets per stream (1 stdout, 2 stderr) and the
  -- time they arrived (µs since the epoch); old chunks are dropped past a per-stream bound. size is
  -- length(data), kept so that finding a chunk never reads the blobs before it.
  CREATE TABLE exec_output (
    exec_id TEXT NOT NULL,
    stream INTEGER NOT NULL CHECK (stream IN (1, 2)),
    offset INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (exec_id, stream, offset)
  );
  -- Named long-running processes of a sandbox; each run is an exec (exec_id: the latest).
  CREATE TABLE processes (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    name TEXT NOT NULL,
    request TEXT NOT NULL,
    restart TEXT NOT NULL,
    max_restarts INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    exec_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX processes_name ON processes(sandbox_id, name) WHERE state != 'removed';
  `,
  // v7: a sandbox name is unique within its tenant (the owner's sandboxes are one more "tenant"),
  // so a tenant cannot learn another's names from a clash.
  `
  DROP INDEX sandboxes_live_name;
  CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(coalesce(tenant, ''), name) WHERE name IS NOT NULL AND state != 'destroyed';
  `,
];

export const SCHEMA_VERSION = migrations.length;

export interface DatabaseOptions {
  readOnly?: boolean;
  /** How long a writer waits for another process's lock before STORAGE_BUSY. */
  busyTimeoutMs?: number;
}

/**
 * True when opening failed only because the database's folder is on a read-only filesystem and
 * no write-ahead log holds data the main file lacks (so reading the main file alone is exact).
 */
function readableAsImmutable(path: string, e: unknown): boolean {
  if (path === ':memory:' || ((e as { errcode?: number }).errcode ?? 0) % 256 !== 14) return false;
  try {
    accessSync(dirname(path), constants.W_OK);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EROFS') return false;
  }
  try {
    return statSync(path + '-wal').size === 0;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export class Database {
  readonly raw: DatabaseSync;
  readonly path: string;
  private readonly statements = new Map<string, StatementSync>();
  private depth = 0;

  constructor(path: string, options: DatabaseOptions = {}) {
    this.path = path;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const settings = { readOnly: options.readOnly ?? false, timeout: options.busyTimeoutMs ?? 15_000, enableForeignKeyConstraints: true };
      let raw = new DatabaseSync(path, settings);
      let immutable = false;
      try {
        raw.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192;');
      } catch (e) {
        raw.close();
        if (!readableAsImmutable(path, e)) throw e;
        // A WAL database on a read-only filesystem, closed cleanly (no -wal or -shm file left),
        // cannot be opened the normal way; opened as immutable it can still be read, and every
        // write fails with SQLITE_READONLY (STORAGE_READ_ONLY).
        const url = pathToFileURL(path);
        url.searchParams.set('immutable', '1');
        raw = new DatabaseSync(url, { ...settings, readOnly: true });
        immutable = true;
      }
      this.raw = raw;
      if (immutable) this.checkVersionReadOnly();
      else if (!options.readOnly) this.migrate();
    } catch (e) {
      throw toCorralError(e);
    }
  }

  private checkVersionReadOnly(): void {
    const version = (this.raw.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION)
      throw new CorralError('STORAGE_CORRUPT', `database schema ${version} is newer than this Corral (${SCHEMA_VERSION}): upgrade Corral`);
    if (version < SCHEMA_VERSION)
      throw new CorralError('STORAGE_READ_ONLY', `the Corral database needs a schema upgrade (${version} to ${SCHEMA_VERSION}) but its filesystem is read-only: mount it read-write once`);
  }

  private migrate(): void {
    const version = (this.raw.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION)
      throw new CorralError('STORAGE_CORRUPT', `database schema ${version} is newer than this Corral (${SCHEMA_VERSION}): upgrade Corral`);
    if (version === SCHEMA_VERSION) return;
    this.transaction(() => {
      const current = (this.raw.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
      for (let v = current; v < SCHEMA_VERSION; v++) this.raw.exec(migrations[v]!);
      this.raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    });
  }

  /** A prepared statement, cached for the life of the connection. */
  stmt(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  get<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  all<T>(sql: string, ...params: SQLInputValue[]): T[] {
    return this.stmt(sql).all(...params) as T[];
  }

  run(sql: string, ...params: SQLInputValue[]): { changes: number; lastInsertRowid: number } {
    const r = this.stmt(sql).run(...params);
    return { changes: Number(r.changes), lastInsertRowid: Number(r.lastInsertRowid) };
  }

  /**
   * Runs `fn` in a write transaction. The outermost level takes the write lock up front
   * (BEGIN IMMEDIATE), so a read-modify-write inside cannot interleave with another process;
   * nested calls become savepoints.
   */
  transaction<T>(fn: () => T): T {
    const outer = this.depth === 0;
    const name = `sp${this.depth}`;
    this.raw.exec(outer ? 'BEGIN IMMEDIATE' : `SAVEPOINT ${name}`);
    this.depth++;
    try {
      const result = fn();
      // A failing COMMIT (a full disk, a deferred constraint) lands in the catch below and is rolled back.
      this.raw.exec(outer ? 'COMMIT' : `RELEASE ${name}`);
      return result;
    } catch (e) {
      try {
        this.raw.exec(outer ? 'ROLLBACK' : `ROLLBACK TO ${name}; RELEASE ${name}`);
      } catch {
        // SQLite may already have rolled back (for example on SQLITE_FULL); nothing is left to undo.
      }
      throw e;
    } finally {
      this.depth--;
    }
  }

  /**
   * Runs `fn` in one read transaction, so all its statements see one snapshot of the database
   * (other processes' commits meanwhile are not seen). Inside a transaction, it just runs `fn`.
   */
  readTransaction<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.raw.exec('BEGIN');
    this.depth++;
    try {
      return fn();
    } finally {
      this.depth--;
      if (this.raw.isTransaction) this.raw.exec('COMMIT');
    }
  }

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  close(): void {
    this.statements.clear();
    if (this.raw.isOpen) this.raw.close();
  }
}
