// Bundles: a vault's whole history in one portable file, itself a small SQLite database. Export
// takes every commit reachable from the head and the checkpoints (following parents; the fork
// point is among them), their trees and blobs, the checkpoints, tags, metadata, quota and ancestry. Import
// trusts nothing in the file: every object's hash and every tree's totals are recomputed, every
// name is validated, and it all goes in as one transaction, or not at all.
import { DatabaseSync, type SQLOutputValue } from 'node:sqlite';
import { chmodSync, closeSync, rmSync, statSync } from 'node:fs';
import { resolve as resolveHost } from 'node:path';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { MAX_COMPONENT_BYTES, normalizePath, validateCheckpointName, validateMetaKey, validateTag, validateVaultName } from '../protocol/paths.ts';
import { commitId, type Caller, type CommitRow, type CorralStore, type Origin, type Quota } from '../store/corral-store.ts';
import { EMPTY_TREE, encodeTree, sha256, type Entry } from '../store/object-store.ts';
import type { ServiceDeps } from './corral.ts';
import { checkOutputFile, createTempBeside, publishHostFile } from '../runtime/host-files.ts';
import { markTrees, reachableCommits } from './reachability.ts';
import { validateMetaValue } from './tag-service.ts';

export const BUNDLE_FORMAT = 'corral-bundle';
export const BUNDLE_VERSION = 1;

const BUNDLE_SCHEMA = `
  CREATE TABLE bundle_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE commits (
    id TEXT PRIMARY KEY, parent TEXT, tree TEXT NOT NULL, vault TEXT NOT NULL, message TEXT NOT NULL,
    origin TEXT NOT NULL, actor TEXT NOT NULL, created_at INTEGER NOT NULL, size INTEGER NOT NULL, files INTEGER NOT NULL
  );
  CREATE TABLE trees (hash TEXT PRIMARY KEY, entries TEXT NOT NULL);
  CREATE TABLE blobs (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
  CREATE TABLE checkpoints (name TEXT PRIMARY KEY, commit_id TEXT NOT NULL, message TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE TABLE tags (path TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (path, tag));
  CREATE TABLE path_meta (path TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (path, key));
  CREATE TABLE vault_settings (key TEXT PRIMARY KEY, value TEXT);
`;

const ORIGINS: readonly Origin[] = ['cli', 'api', 'exec', 'restore', 'import'];
const HASH = /^[0-9a-f]{64}$/;
/** Deeper than any shard index Corral writes (object-store's MAX_DEPTH is 63). */
const MAX_SHARD_DEPTH = 64;
/** A valid path has at most this many components ('/a/b/…' within MAX_PATH_BYTES). */
const MAX_COMPONENTS = 2048;
const encoder = new TextEncoder();

export interface BundleCounts {
  vault: string;
  head: string;
  commits: number;
  trees: number;
  blobs: number;
  checkpoints: number;
  tags: number;
  meta: number;
}

export interface BundleExportResult extends BundleCounts {
  file: string;
  /** Size of the bundle file. */
  bytes: number;
}

export interface BundleImportResult extends BundleCounts {
  file: string;
  /** The vault's name in the bundle (differs from `vault` with --name). */
  source: string;
  /** Bytes of file content the bundle carried. */
  bytes: number;
}

function invalid(message: string, details: Record<string, unknown> = {}, cause?: unknown): CorralError {
  return new CorralError('BUNDLE_INVALID', `${message} (nothing was changed)`, details, cause);
}

/** Runs a read of the bundle file: any SQLite failure there means a damaged or foreign file. */
function fromBundle<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CorralError) throw e;
    throw invalid(`the bundle is damaged or not a Corral bundle (${what}: ${(e as Error).message})`, {}, e);
  }
}

/** Iterates rows of the bundle, turning read failures midway into BUNDLE_INVALID. */
function* bundleRows<T>(db: DatabaseSync, sql: string, what: string): Generator<T> {
  const it = fromBundle(() => db.prepare(sql).iterate(), what);
  for (;;) {
    const r = fromBundle(() => it.next(), what);
    if (r.done) return;
    yield r.value as T;
  }
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown, max = 1_000_000): v is string => typeof v === 'string' && v.length <= max && !v.includes('\0');

/** Parses a tree's text strictly: the canonical encoding, safe names, sane fields. */
function parseTree(hash: string, text: string): Entry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid(`tree ${hash} is not valid JSON`, { tree: hash });
  }
  if (!Array.isArray(raw)) throw invalid(`tree ${hash} is not a list of entries`, { tree: hash });
  const entries: Entry[] = [];
  let previous: string | null = null;
  for (const item of raw as unknown[]) {
    const bad = (why: string): CorralError => invalid(`tree ${hash} has a bad entry: ${why}`, { tree: hash });
    if (!Array.isArray(item) || item.length < 6 || item.length > 7) throw bad('wrong shape');
    const [name, k, mode, h, size, mtime, files] = item as unknown[];
    if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || encoder.encode(name).length > MAX_COMPONENT_BYTES)
      throw bad(`unsafe name ${JSON.stringify(String(name).slice(0, 80))}`);
    if (previous !== null && !(previous < name)) throw bad('names not sorted or repeated');
    previous = name;
    if (k !== 'f' && k !== 'd' && k !== 'l') throw bad(`unknown kind ${JSON.stringify(k)}`);
    if (!isInt(mode) || mode > 0o7777) throw bad('mode');
    if (typeof h !== 'string' || !HASH.test(h)) throw bad('hash');
    if (!isInt(size) || !isInt(mtime)) throw bad('size or mtime');
    if (k === 'd') {
      if (!isInt(files) || item.length !== 7) throw bad('file count');
      entries.push({ name, kind: 'dir', mode, hash: h, size, mtime, files });
    } else {
      if (item.length !== 6) throw bad('file count on a non-directory');
      entries.push({ name, kind: k === 'f' ? 'file' : 'symlink', mode, hash: h, size, mtime });
    }
  }
  if (encodeTree(entries) !== text) throw invalid(`tree ${hash} is not in Corral's canonical encoding`, { tree: hash });
  return entries;
}

/** Parses an index row of a sharded directory strictly; returns its children's hashes. */
function parseIndex(hash: string, text: string): string[] {
  const bad = (why: string): CorralError => invalid(`tree ${hash} is a bad shard index: ${why}`, { tree: hash });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not valid JSON');
  }
  const x = raw as { d?: unknown; c?: unknown };
  if (typeof x !== 'object' || x === null || !isInt(x.d) || x.d > MAX_SHARD_DEPTH || !Array.isArray(x.c) || x.c.length !== 16) throw bad('wrong shape');
  const children: string[] = [];
  for (const c of x.c as unknown[]) {
    if (!Array.isArray(c) || c.length !== 4 || typeof c[0] !== 'string' || !HASH.test(c[0]) || !isInt(c[1]) || !isInt(c[2]) || !isInt(c[3])) throw bad('a child is malformed');
    children.push(c[0]);
  }
  if (JSON.stringify({ d: x.d, c: x.c }) !== text) throw bad("not in Corral's canonical encoding");
  return children;
}

export class BundleService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  // ---- export ------------------------------------------------------------------------------

  /** Writes `vault` with its whole history to the new file `file` (replaced only with `force`). */
  exportBundle(vault: string, file: string, options: { force?: boolean } = {}): BundleExportResult {
    const target = resolveHost(file);
    let result: BundleExportResult | undefined;
    let failure: unknown;
    try {
      result = this.writeFile(vault, target, options.force === true);
    } catch (e) {
      failure = e;
    }
    // Audited once either way; the export itself ran outside the write lock, on a read snapshot.
    return this.store.write(this.caller, vault, { op: 'bundle.export', target: vault, details: { file: target } }, () => {
      if (failure !== undefined) throw failure;
      return result!;
    }, (r) => ({ head: r.head, commits: r.commits, blobs: r.blobs, bytes: r.bytes }));
  }

  private writeFile(vault: string, target: string, force: boolean): BundleExportResult {
    this.store.getVault(vault);
    checkOutputFile(target, force);
    const temp = createTempBeside(target);
    closeSync(temp.fd);
    const tmp = temp.path;
    let out: DatabaseSync | undefined;
    try {
      out = new DatabaseSync(tmp);
      out.exec('PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;');
      out.exec(BUNDLE_SCHEMA);
      out.exec('BEGIN');
      // A read transaction: one consistent view of refs and objects, without blocking writers (WAL).
      const bundleDb = out;
      const counts = this.store.db.readTransaction(() => this.writeBundle(vault, bundleDb));
      out.exec('COMMIT');
      out.close();
      out = undefined;
      chmodSync(tmp, 0o600);
      publishHostFile(tmp, target, force);
      return { ...counts, file: target, bytes: statSync(target).size };
    } catch (e) {
      try {
        out?.close();
      } catch {
        // Closing after a failure may fail too; the file is removed below either way.
      }
      rmSync(tmp, { force: true });
      throw toCorralError(e);
    }
  }

  /** Copies the vault's reachable history into the open bundle database `out`. */
  private writeBundle(vault: string, out: DatabaseSync): BundleCounts {
    const db = this.store.db;
    const v = this.store.getVault(vault);
    const checkpoints = this.store.listCheckpoints(v);
    const missingTree = (hash: string): CorralError => new CorralError('STORAGE_CORRUPT', `tree ${hash} of vault '${vault}' is missing from the database`, { tree: hash });

    // Commits: from the head and each checkpoint, following parents (the fork point is among them).
    const putCommit = out.prepare('INSERT INTO commits(id, parent, tree, vault, message, origin, actor, created_at, size, files) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const starts = this.store.historyRefs(v);
    const commits = reachableCommits(db, starts);
    const roots: string[] = [];
    for (const { id } of commits) {
      const c = db.get<CommitRow>('SELECT * FROM commits WHERE id = ?', id);
      if (!c) throw new CorralError('STORAGE_CORRUPT', `commit ${id} of vault '${vault}' is missing from the database`, { commit: id });
      putCommit.run(c.id, c.parent, c.tree, c.vault, c.message, c.origin, c.actor, c.created_at, c.size, c.files);
      roots.push(c.tree);
    }

    // Directories (every row each is stored in: sharded ones have several), then the blobs they name; each once.
    const putTree = out.prepare('INSERT INTO trees(hash, entries) VALUES (?, ?)');
    const rows = new Set<string>();
    const blobs = new Set<string>();
    markTrees(this.store.objects, roots, rows, {
      row: (hash) => {
        const text = db.get<{ entries: string }>('SELECT entries FROM trees WHERE hash = ?', hash)?.entries ?? (hash === EMPTY_TREE ? encodeTree([]) : undefined);
        if (text === undefined) throw missingTree(hash);
        putTree.run(hash, text);
      },
      blob: (hash) => void blobs.add(hash),
      missing: (hash) => missingTree(hash),
    });
    const putBlob = out.prepare('INSERT INTO blobs(hash, size, data) VALUES (?, ?, ?)');
    for (const hash of blobs) {
      const b = db.get<{ size: number; data: Uint8Array }>('SELECT size, data FROM blobs WHERE hash = ?', hash);
      if (!b) throw new CorralError('STORAGE_CORRUPT', `blob ${hash} of vault '${vault}' is missing from the database`, { blob: hash });
      putBlob.run(hash, b.size, b.data);
    }

    const putCheckpoint = out.prepare('INSERT INTO checkpoints(name, commit_id, message, created_at) VALUES (?, ?, ?, ?)');
    for (const c of checkpoints) putCheckpoint.run(c.name, c.commit, c.message, c.createdAt);
    const tags = db.all<{ path: string; tag: string }>('SELECT path, tag FROM tags WHERE vault_id = ?', v.id);
    const putTag = out.prepare('INSERT INTO tags(path, tag) VALUES (?, ?)');
    for (const t of tags) putTag.run(t.path, t.tag);
    const meta = db.all<{ path: string; key: string; value: string }>('SELECT path, key, value FROM path_meta WHERE vault_id = ?', v.id);
    const putMeta = out.prepare('INSERT INTO path_meta(path, key, value) VALUES (?, ?, ?)');
    for (const m of meta) putMeta.run(m.path, m.key, m.value);

    const info = out.prepare('INSERT INTO bundle_info(key, value) VALUES (?, ?)');
    info.run('format', BUNDLE_FORMAT);
    info.run('version', String(BUNDLE_VERSION));
    info.run('vault', v.name);
    info.run('head', v.head);
    info.run('created', String(this.store.now()));
    const setting = out.prepare('INSERT INTO vault_settings(key, value) VALUES (?, ?)');
    const num = (n: number | null): string | null => (n === null ? null : String(n));
    setting.run('created_at', String(v.createdAt));
    setting.run('parent', v.parent);
    setting.run('forked_from', v.forkedFrom);
    setting.run('quota_bytes', num(v.quota.maxBytes));
    setting.run('quota_files', num(v.quota.maxFiles));
    setting.run('quota_file_size', num(v.quota.maxFileSize));

    return { vault: v.name, head: v.head, commits: commits.length, trees: rows.size, blobs: blobs.size, checkpoints: checkpoints.length, tags: tags.length, meta: meta.length };
  }

  // ---- import ------------------------------------------------------------------------------

  /** Creates a vault from a bundle file, as `name` or the bundle's own vault name. */
  importBundle(file: string, options: { name?: string } = {}): BundleImportResult {
    const source = resolveHost(file);
    if (options.name !== undefined) validateVaultName(options.name);
    let st;
    try {
      st = statSync(source);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new CorralError('PATH_NOT_FOUND', `no such bundle file: ${source}`, { hostPath: source });
      throw toCorralError(e);
    }
    if (!st.isFile()) throw invalid(`${source} is not a file`, { hostPath: source });

    const bundle = fromBundle(() => new DatabaseSync(source, { readOnly: true }), 'open');
    try {
      fromBundle(() => bundle.exec('PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;'), 'open');
      const check = fromBundle(() => bundle.prepare('PRAGMA quick_check').all(), 'integrity check');
      if (check.length !== 1 || (check[0] as { quick_check?: string }).quick_check !== 'ok')
        throw invalid(`the bundle file ${source} is damaged (SQLite integrity check failed)`, { hostPath: source });
      const info = this.readInfo(bundle, source);
      const name = options.name ?? info.vault;
      validateVaultName(name);
      if (this.store.findVault(name))
        throw new CorralError('VAULT_EXISTS', `a vault named '${name}' already exists in this Corral home: import under another name with --name NEW`, { vault: name });
      return this.store.write(this.caller, name, { op: 'bundle.import', target: name, details: { file: source, source: info.vault } }, () => this.load(bundle, info, name, source), (r) => ({
        head: r.head,
        commits: r.commits,
        blobs: r.blobs,
      }));
    } finally {
      bundle.close();
    }
  }

  private readInfo(bundle: DatabaseSync, source: string): { vault: string; head: string } {
    const rows = fromBundle(() => bundle.prepare('SELECT key, value FROM bundle_info').all(), 'bundle_info') as { key: unknown; value: unknown }[];
    const info = new Map(rows.map((r) => [String(r.key), r.value]));
    if (info.get('format') !== BUNDLE_FORMAT) throw invalid(`${source} is not a Corral bundle`, { hostPath: source });
    const version = Number(info.get('version'));
    if (!Number.isInteger(version) || version < 1) throw invalid(`the bundle's format version ${String(info.get('version'))} is not valid`, { version: info.get('version') });
    if (version > BUNDLE_VERSION) throw invalid(`the bundle has format version ${version}, newer than this Corral reads (${BUNDLE_VERSION}): upgrade Corral`, { version });
    const vault = info.get('vault');
    const head = info.get('head');
    if (typeof vault !== 'string') throw invalid('the bundle names no vault');
    try {
      validateVaultName(vault);
    } catch {
      throw invalid(`the bundle's vault name ${JSON.stringify(vault.slice(0, 80))} is not valid`);
    }
    if (typeof head !== 'string' || !HASH.test(head)) throw invalid('the bundle has no valid head commit');
    return { vault, head };
  }

  /** Verifies and inserts everything; runs inside the import's transaction, so any throw undoes it all. */
  private load(bundle: DatabaseSync, info: { vault: string; head: string }, name: string, source: string): BundleImportResult {
    const db = this.store.db;

    // Blobs: the hash must be the content's.
    const blobSizes = new Map<string, number>();
    let bytes = 0;
    for (const r of bundleRows<{ hash: unknown; size: unknown; data: unknown }>(bundle, 'SELECT hash, size, data FROM blobs', 'blobs')) {
      if (typeof r.hash !== 'string' || !(r.data instanceof Uint8Array)) throw invalid('a blob row has the wrong types');
      const put = this.store.objects.putBlob(r.data);
      if (put.hash !== r.hash || r.size !== r.data.length) throw invalid(`blob ${String(r.hash).slice(0, 64)} does not match its content (corrupted or tampered)`, { blob: r.hash });
      blobSizes.set(put.hash, put.size);
      bytes += put.size;
    }
    // Only the bundle's own blobs count: naming one that merely exists in this home would hand the
    // new vault another vault's content.
    const blobSize = (hash: string): number | undefined => blobSizes.get(hash);

    // Trees: every row's hash must be its text's. A directory is then rebuilt from its verified
    // entries with the store's own putTree, which must arrive at the very hash that named it: that
    // proves the shape (sharding), the placement of every name and every total.
    const rows = new Map<string, string>();
    for (const r of bundleRows<{ hash: unknown; entries: unknown }>(bundle, 'SELECT hash, entries FROM trees', 'trees')) {
      if (typeof r.hash !== 'string' || typeof r.entries !== 'string') throw invalid('a tree row has the wrong types');
      if (sha256(r.entries) !== r.hash) throw invalid(`tree ${r.hash.slice(0, 64)} does not match its content (corrupted or tampered)`, { tree: r.hash });
      rows.set(r.hash, r.entries);
    }
    const collect = (hash: string, depth: number, out: Entry[]): void => {
      if (depth > MAX_SHARD_DEPTH) throw invalid(`tree ${hash} is sharded deeper than Corral ever stores`, { tree: hash });
      const text = rows.get(hash) ?? (hash === EMPTY_TREE ? encodeTree([]) : undefined);
      if (text === undefined) throw invalid(`tree ${hash} is named but missing from the bundle`, { tree: hash });
      if (text.startsWith('{')) for (const child of parseIndex(hash, text)) collect(child, depth + 1, out);
      else out.push(...parseTree(hash, text));
    };
    const dirs = new Map<string, { size: number; files: number }>();
    const verifyDir = (hash: string, depth: number): { size: number; files: number } => {
      const known = dirs.get(hash);
      if (known) return known;
      if (depth > MAX_COMPONENTS) throw invalid('the bundle nests directories deeper than any valid path');
      // Every directory is verified from the bundle's rows, even one this home already has: the
      // bundle must carry what it names.
      const entries: Entry[] = [];
      collect(hash, 0, entries);
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (let i = 1; i < entries.length; i++) if (entries[i - 1]!.name === entries[i]!.name) throw invalid(`tree ${hash} holds the name ${entries[i]!.name} twice`, { tree: hash });
      for (const e of entries) {
        if (e.kind === 'dir') {
          const sub = verifyDir(e.hash, depth + 1);
          if (sub.size !== e.size || sub.files !== e.files) throw invalid(`tree ${hash} states wrong totals for ${e.name}`, { tree: hash });
        } else {
          const size = blobSize(e.hash);
          if (size === undefined) throw invalid(`tree ${hash} names blob ${e.hash}, which the bundle lacks`, { tree: hash, blob: e.hash });
          if (size !== e.size) throw invalid(`tree ${hash} states the wrong size for ${e.name}`, { tree: hash });
          if (e.kind === 'symlink' && size === 0) throw invalid(`tree ${hash} holds a symlink with an empty target`, { tree: hash });
        }
      }
      const ref = this.store.objects.putTreeRef(entries);
      if (ref.hash !== hash) throw invalid(`tree ${hash} is not stored the way Corral stores that directory (tampered)`, { tree: hash });
      const t = { size: ref.size, files: ref.files };
      dirs.set(hash, t);
      return t;
    };

    // Commits: the id must be the hash of its fields, its tree and totals true, its parent present.
    const commits = new Map<string, CommitRow>();
    for (const r of bundleRows<CommitRow>(bundle, 'SELECT id, parent, tree, vault, message, origin, actor, created_at, size, files FROM commits', 'commits')) {
      if (
        typeof r.id !== 'string' ||
        (r.parent !== null && (typeof r.parent !== 'string' || !HASH.test(r.parent))) ||
        typeof r.tree !== 'string' ||
        !isText(r.vault, 64) ||
        !isText(r.message) ||
        !isText(r.actor, 1000) ||
        !ORIGINS.includes(r.origin as Origin) ||
        !isInt(r.created_at) ||
        !isInt(r.size) ||
        !isInt(r.files)
      )
        throw invalid(`commit ${String(r.id).slice(0, 64)} has fields of the wrong type or value`, { commit: String(r.id).slice(0, 64) });
      if (commitId(r) !== r.id) throw invalid(`commit ${r.id.slice(0, 64)} does not match its content (corrupted or tampered)`, { commit: r.id });
      commits.set(r.id, r);
    }
    // Everything must come from the bundle itself: naming a commit that merely exists in this home
    // would hand the new vault another vault's files.
    const hasCommit = (id: string): boolean => commits.has(id);
    for (const c of commits.values()) {
      if (!HASH.test(c.tree)) throw invalid(`commit ${c.id} names a tree that is not a hash`, { commit: c.id });
      const t = verifyDir(c.tree, 0);
      if (t.size !== c.size || t.files !== c.files) throw invalid(`commit ${c.id} states wrong totals for its tree`, { commit: c.id });
      if (c.parent !== null && !hasCommit(c.parent)) throw invalid(`commit ${c.id} names parent ${c.parent}, which the bundle lacks`, { commit: c.id });
      db.run(
        'INSERT OR IGNORE INTO commits(id, parent, tree, vault, message, origin, actor, created_at, size, files) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        c.id, c.parent, c.tree, c.vault, c.message, c.origin, c.actor, c.created_at, c.size, c.files,
      );
    }
    if (!hasCommit(info.head)) throw invalid(`the bundle's head ${info.head} is not among its commits`, { head: info.head });

    // The vault, its settings and ancestry.
    const settings = new Map(
      fromBundle(() => bundle.prepare('SELECT key, value FROM vault_settings').all(), 'vault_settings').map((r) => [String(r.key), r.value as SQLOutputValue]),
    );
    const optionalNumber = (key: string): number | null => {
      const raw = settings.get(key);
      if (raw === null || raw === undefined) return null;
      const n = Number(raw);
      if (!isInt(n)) throw invalid(`the bundle's ${key} setting is not a whole number`, { [key]: raw });
      return n;
    };
    const quota: Quota = { maxBytes: optionalNumber('quota_bytes'), maxFiles: optionalNumber('quota_files'), maxFileSize: optionalNumber('quota_file_size') };
    const parent = settings.get('parent') ?? null;
    if (parent !== null) {
      try {
        validateVaultName(parent);
      } catch {
        throw invalid("the bundle's parent vault name is not valid");
      }
    }
    const claimedFork = settings.get('forked_from') ?? null;
    if (claimedFork !== null && (typeof claimedFork !== 'string' || !HASH.test(claimedFork))) throw invalid("the bundle's fork point is not a commit id");
    // A fork point outside the bundle's own commits is dropped: it would tie the vault to another's history.
    const forkedFrom = typeof claimedFork === 'string' && commits.has(claimedFork) ? claimedFork : null;
    const v = this.store.insertVault(this.caller, name, { head: info.head, parent: parent as string | null, forkedFrom, quota });
    const createdAt = optionalNumber('created_at');
    if (createdAt !== null) db.run('UPDATE vaults SET created_at = ? WHERE id = ?', createdAt, v.id);

    // Checkpoints, tags and metadata.
    const cpNames = new Set<string>();
    for (const r of bundleRows<{ name: unknown; commit_id: unknown; message: unknown; created_at: unknown }>(bundle, 'SELECT name, commit_id, message, created_at FROM checkpoints', 'checkpoints')) {
      const cpName = this.valid(() => validateCheckpointName(r.name), 'checkpoint name');
      if (typeof r.commit_id !== 'string' || !hasCommit(r.commit_id)) throw invalid(`checkpoint ${cpName} points at a commit the bundle lacks`, { checkpoint: cpName });
      if (!isText(r.message) || !isInt(r.created_at)) throw invalid(`checkpoint ${cpName} has fields of the wrong type`, { checkpoint: cpName });
      if (cpNames.has(cpName)) throw invalid(`checkpoint ${cpName} appears twice`, { checkpoint: cpName });
      cpNames.add(cpName);
      db.run('INSERT INTO checkpoints(vault_id, name, commit_id, message, created_at) VALUES (?, ?, ?, ?, ?)', v.id, cpName, r.commit_id, r.message, r.created_at);
    }
    let tags = 0;
    for (const r of bundleRows<{ path: unknown; tag: unknown }>(bundle, 'SELECT path, tag FROM tags', 'tags')) {
      const path = this.validPath(r.path);
      const tag = this.valid(() => validateTag(r.tag), 'tag');
      db.run('INSERT OR IGNORE INTO tags(vault_id, path, tag) VALUES (?, ?, ?)', v.id, path, tag);
      tags++;
    }
    let meta = 0;
    for (const r of bundleRows<{ path: unknown; key: unknown; value: unknown }>(bundle, 'SELECT path, key, value FROM path_meta', 'path_meta')) {
      const path = this.validPath(r.path);
      const key = this.valid(() => validateMetaKey(r.key), 'metadata key');
      // The same rule as `meta set` (UTF-8 bytes, no NUL), so a bundle cannot carry what the CLI refuses.
      const value = this.valid(() => validateMetaValue(r.value, key), 'metadata value');
      db.run('INSERT OR REPLACE INTO path_meta(vault_id, path, key, value) VALUES (?, ?, ?, ?)', v.id, path, key, value);
      meta++;
    }

    return { vault: name, source: info.vault, file: source, head: info.head, commits: commits.size, trees: rows.size, blobs: blobSizes.size, checkpoints: cpNames.size, tags, meta, bytes };
  }

  private valid<T>(fn: () => T, what: string): T {
    try {
      return fn();
    } catch (e) {
      throw invalid(`the bundle holds an invalid ${what}: ${(e as Error).message}`);
    }
  }

  private validPath(path: unknown): string {
    const p = this.valid(() => normalizePath(path), 'path');
    if (p !== path) throw invalid(`the bundle holds a path that is not normalised: ${JSON.stringify(String(path).slice(0, 80))}`);
    return p;
  }
}

