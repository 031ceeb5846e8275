// Upkeep of a Corral home: statistics, garbage collection (mark and sweep from every vault head
// and checkpoint) and compaction of the database file.
import { statSync } from 'node:fs';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import type { Caller, CorralStore, Vault } from '../store/corral-store.ts';
import { EMPTY_TREE, type ObjectStore } from '../store/object-store.ts';
import type { ServiceDeps } from './corral.ts';
import { countReachableCommits, markTrees, reachableCommits } from './reachability.ts';

export const DEFAULT_GC_GRACE_SECONDS = 3600;

export interface VaultStats {
  vault: string;
  head: string;
  files: number;
  dirs: number;
  symlinks: number;
  /** Commits reachable from the head and the checkpoints, following parents (into the parent vault for forks). */
  commits: number;
  checkpoints: number;
  /** Distinct blobs (file contents and symlink targets) the head refers to. */
  blobs: number;
  /** Bytes of all files and symlinks at the head, counting every copy. */
  logicalBytes: number;
  /** Bytes of the distinct blobs the head refers to: what its content costs once deduplicated. */
  storedBytes: number;
  /** logicalBytes / storedBytes (1 for an empty head). */
  dedupRatio: number;
}

export interface DatabaseStats {
  path: string;
  /** Main file plus write-ahead log. */
  bytes: number;
  mainBytes: number;
  walBytes: number;
  pageSize: number;
  pageCount: number;
  freelistCount: number;
}

export interface HomeStats {
  home: string;
  database: DatabaseStats;
  vaults: number;
  rows: { blobs: number; trees: number; commits: number; checkpoints: number; auditRecords: number };
  /** Bytes of every stored blob, including old versions and garbage. */
  blobBytes: number;
  /** Over every vault's head together: deduplication across vaults (forks share their blobs). */
  heads: { files: number; blobs: number; logicalBytes: number; storedBytes: number; dedupRatio: number };
}

/** Something that shows how far long work got (the CLI passes its stderr progress line). */
export interface ProgressSink {
  update(done: number, total?: number): void;
}

export interface GcOptions {
  dryRun?: boolean;
  /** Objects younger than this are kept, with everything they reach (default 3600). */
  graceSeconds?: number;
  progress?: ProgressSink;
}

export interface ObjectCounts {
  commits: number;
  trees: number;
  blobs: number;
}

export interface GcResult {
  dryRun: boolean;
  graceSeconds: number;
  /** Objects created at or before this time (ms since the epoch) may go. */
  cutoff: number;
  /** Reachable from a vault head or a checkpoint. */
  reachable: ObjectCounts;
  /** Not reachable, but kept because they (or an object that refers to them) are younger than the grace period. */
  keptByGrace: ObjectCounts;
  /** Removed (or, with dryRun, what would be). */
  removed: ObjectCounts & { blobBytes: number; treeBytes: number; bytes: number };
  durationMs: number;
}

export interface CompactResult {
  before: DatabaseStats;
  after: DatabaseStats;
  bytesFreed: number;
  /** The final WAL checkpoint could not finish because another connection was reading (it is then retried by SQLite later). */
  walBusy: boolean;
  durationMs: number;
}

interface Counts {
  files: number;
  dirs: number;
  symlinks: number;
}

function ratio(logical: number, stored: number): number {
  return stored === 0 ? 1 : Math.round((logical / stored) * 100) / 100;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/**
 * Counts the entries below `hash` (every path, so a directory stored twice counts twice) and
 * records each distinct blob in `blobs`. `seen` memoises subtrees already walked for this blob
 * set, so identical subtrees are read once.
 */
function census(objects: ObjectStore, hash: string, blobs: Map<string, number>, seen: Map<string, Counts>): Counts {
  const known = seen.get(hash);
  if (known) return known;
  const c: Counts = { files: 0, dirs: 0, symlinks: 0 };
  for (const e of objects.getTree(hash)) {
    if (e.kind === 'dir') {
      const below = census(objects, e.hash, blobs, seen);
      c.dirs += 1 + below.dirs;
      c.files += below.files;
      c.symlinks += below.symlinks;
    } else {
      if (e.kind === 'file') c.files++;
      else c.symlinks++;
      blobs.set(e.hash, e.size);
    }
  }
  seen.set(hash, c);
  return c;
}

export class MaintenanceService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  // ---- stats --------------------------------------------------------------------------------

  stats(vaultName: string): VaultStats {
    return this.vaultStats(this.store.getVault(vaultName), new Map(), new Map());
  }

  private vaultStats(v: Vault, blobs: Map<string, number>, seen: Map<string, Counts>): VaultStats {
    const head = this.store.getCommit(v.head);
    const counts = census(this.store.objects, head.tree, blobs, seen);
    let storedBytes = 0;
    for (const size of blobs.values()) storedBytes += size;
    const refs = this.store.historyRefs(v);
    return {
      vault: v.name,
      head: v.head,
      ...counts,
      commits: countReachableCommits(this.store.db, refs),
      checkpoints: refs.length - 1,
      blobs: blobs.size,
      logicalBytes: head.size,
      storedBytes,
      dedupRatio: ratio(head.size, storedBytes),
    };
  }

  /** Every vault's statistics, in name order. */
  allVaultStats(): VaultStats[] {
    return this.store.listVaults().map((v) => this.vaultStats(v, new Map(), new Map()));
  }

  databaseStats(): DatabaseStats {
    const db = this.store.db;
    const pragma = (name: string): number => Object.values(db.raw.prepare(`PRAGMA ${name}`).get() as Record<string, number>)[0] ?? 0;
    const mainBytes = fileSize(db.path);
    const walBytes = fileSize(db.path + '-wal');
    return { path: db.path, bytes: mainBytes + walBytes, mainBytes, walBytes, pageSize: pragma('page_size'), pageCount: pragma('page_count'), freelistCount: pragma('freelist_count') };
  }

  homeStats(): HomeStats {
    const db = this.store.db;
    const count = (table: string): number => db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)!.n;
    const blobs = new Map<string, number>();
    let files = 0;
    let logicalBytes = 0;
    const vaults = this.store.listVaults();
    const seen = new Map<string, Counts>();
    for (const v of vaults) {
      const head = this.store.getCommit(v.head);
      files += head.files;
      logicalBytes += head.size;
      // One blob set over all heads, so a subtree shared by two vaults is walked once.
      census(this.store.objects, head.tree, blobs, seen);
    }
    let storedBytes = 0;
    for (const size of blobs.values()) storedBytes += size;
    return {
      home: this.store.home,
      database: this.databaseStats(),
      vaults: vaults.length,
      rows: { blobs: count('blobs'), trees: count('trees'), commits: count('commits'), checkpoints: count('checkpoints'), auditRecords: count('audit') },
      blobBytes: db.get<{ n: number }>('SELECT coalesce(sum(size), 0) AS n FROM blobs')!.n,
      heads: { files, blobs: blobs.size, logicalBytes, storedBytes, dedupRatio: ratio(logicalBytes, storedBytes) },
    };
  }

  // ---- gc -----------------------------------------------------------------------------------

  /**
   * Mark and sweep over the whole home. Marks every commit reachable from a vault head or a
   * checkpoint (following parents), their trees and blobs; objects younger than the grace period
   * are kept together with everything they reach, so a commit being assembled elsewhere never
   * loses its parts. Marking runs inside the sweep's write transaction (BEGIN IMMEDIATE): no
   * writer can make an old unreachable blob reachable again (by writing the same content) between
   * the mark and the sweep.
   */
  gc(options: GcOptions = {}): GcResult {
    const graceSeconds = options.graceSeconds ?? DEFAULT_GC_GRACE_SECONDS;
    if (!Number.isSafeInteger(graceSeconds) || graceSeconds < 0)
      throw new CorralError('INVALID_ARGUMENT', `the grace period must be a whole number of seconds of at least 0, got ${String(graceSeconds)}`, { graceSeconds });
    const dryRun = options.dryRun === true;
    const started = Date.now();
    const run = (): GcResult => {
      const cutoff = this.store.now() - graceSeconds * 1000;
      const { reachable, keptByGrace, marks } = this.mark(cutoff, options.progress);
      const removed = this.sweep(marks, cutoff, dryRun);
      return { dryRun, graceSeconds, cutoff, reachable, keptByGrace, removed, durationMs: Date.now() - started };
    };
    if (dryRun) {
      try {
        return this.store.db.readTransaction(run);
      } catch (e) {
        throw toCorralError(e);
      }
    }
    return this.store.write(this.caller, null, { op: 'gc', details: { graceSeconds } }, run, (r) => ({ removed: r.removed, reachable: r.reachable, keptByGrace: r.keptByGrace }));
  }

  private mark(cutoff: number, progress?: ProgressSink): { reachable: ObjectCounts; keptByGrace: ObjectCounts; marks: { commits: Set<string>; trees: Set<string>; blobs: Set<string> } } {
    const db = this.store.db;
    const commits = new Set<string>();
    const trees = new Set<string>();
    const blobs = new Set<string>();
    let walked = 0;

    // A directory may be stored in several rows (an index of shards): every row is marked.
    const visitor = {
      row: (): void => {
        if (++walked % 1000 === 0) progress?.update(walked);
      },
      blob: (hash: string): void => void blobs.add(hash),
      missing: (hash: string, cause: CorralError): CorralError =>
        new CorralError('STORAGE_CORRUPT', `gc stopped: tree ${hash} is reachable but missing from the database, so what it refers to cannot be told apart from garbage (nothing was deleted)`, { tree: hash }, cause),
    };
    const markCommits = (seeds: string[]): void => {
      const newTrees: string[] = [];
      for (const r of reachableCommits(db, seeds)) {
        if (r.tree === null) throw new CorralError('STORAGE_CORRUPT', `gc stopped: commit ${r.id} is reachable but missing from the database (nothing was deleted)`, { commit: r.id });
        if (!commits.has(r.id)) {
          commits.add(r.id);
          newTrees.push(r.tree);
        }
      }
      markTrees(this.store.objects, newTrees, trees, visitor);
    };

    const refs = [
      ...db.all<{ id: string }>('SELECT head AS id FROM vaults').map((r) => r.id),
      ...db.all<{ id: string }>('SELECT commit_id AS id FROM checkpoints').map((r) => r.id),
    ];
    markCommits(refs);
    // The empty tree needs no row (it is known without one): count only rows that exist.
    const phantom = (): number => (trees.has(EMPTY_TREE) && !db.get('SELECT 1 AS x FROM trees WHERE hash = ?', EMPTY_TREE) ? 1 : 0);
    const reachable = { commits: commits.size, trees: trees.size - phantom(), blobs: blobs.size };

    // Young objects are roots too: they may belong to a commit another process is assembling.
    markCommits(db.all<{ id: string }>('SELECT id FROM commits WHERE created_at > ?', cutoff).map((r) => r.id));
    markTrees(this.store.objects, db.all<{ hash: string }>('SELECT hash FROM trees WHERE created_at > ?', cutoff).map((r) => r.hash), trees, visitor);
    for (const r of db.all<{ hash: string }>('SELECT hash FROM blobs WHERE created_at > ?', cutoff)) blobs.add(r.hash);
    progress?.update(walked);
    const keptByGrace = { commits: commits.size - reachable.commits, trees: trees.size - phantom() - reachable.trees, blobs: blobs.size - reachable.blobs };
    return { reachable, keptByGrace, marks: { commits, trees, blobs } };
  }

  private sweep(marks: { commits: Set<string>; trees: Set<string>; blobs: Set<string> }, cutoff: number, dryRun: boolean): GcResult['removed'] {
    const db = this.store.db;
    // Collect first, delete after: a table is never changed while a query iterates over it.
    const deadCommits: string[] = [];
    for (const r of db.stmt('SELECT id FROM commits WHERE created_at <= ?').iterate(cutoff) as Iterable<{ id: string }>)
      if (!marks.commits.has(r.id)) deadCommits.push(r.id);
    const deadTrees: string[] = [];
    let treeBytes = 0;
    for (const r of db.stmt('SELECT hash, length(entries) AS bytes FROM trees WHERE created_at <= ?').iterate(cutoff) as Iterable<{ hash: string; bytes: number }>)
      if (!marks.trees.has(r.hash)) {
        deadTrees.push(r.hash);
        treeBytes += r.bytes;
      }
    const deadBlobs: string[] = [];
    let blobBytes = 0;
    for (const r of db.stmt('SELECT hash, size FROM blobs WHERE created_at <= ?').iterate(cutoff) as Iterable<{ hash: string; size: number }>)
      if (!marks.blobs.has(r.hash)) {
        deadBlobs.push(r.hash);
        blobBytes += r.size;
      }
    if (!dryRun) {
      const delCommit = db.stmt('DELETE FROM commits WHERE id = ?');
      for (const id of deadCommits) delCommit.run(id);
      const delTree = db.stmt('DELETE FROM trees WHERE hash = ?');
      for (const h of deadTrees) delTree.run(h);
      const delBlob = db.stmt('DELETE FROM blobs WHERE hash = ?');
      for (const h of deadBlobs) delBlob.run(h);
    }
    return { commits: deadCommits.length, trees: deadTrees.length, blobs: deadBlobs.length, blobBytes, treeBytes, bytes: blobBytes + treeBytes };
  }

  // ---- compact ------------------------------------------------------------------------------

  /**
   * Gives free space back to the filesystem: merges the full-text index's segments, folds the
   * write-ahead log into the main file and rewrites the file without free pages (VACUUM). The
   * audit record follows the work, so it tells what happened: `ok` with the sizes before and
   * after, or `error:CODE` when a step failed.
   */
  compact(): CompactResult {
    const started = Date.now();
    const db = this.store.db;
    if (db.inTransaction) throw new CorralError('INTERNAL', 'compact cannot run inside a transaction');
    const before = this.databaseStats();
    const record = (details: Record<string, unknown>, result: string): void =>
      void this.store.audit.append({ actor: this.caller.actor, vault: null, op: 'compact', target: null, details: { origin: this.caller.origin, bytesBefore: before.bytes, ...details }, result });
    let audited = false;
    let walBusy = false;
    try {
      db.transaction(() => db.run("INSERT INTO fts(fts) VALUES('optimize')"));
      db.raw.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      db.raw.exec('VACUUM');
      // VACUUM writes the new file through the WAL: fold it in before measuring.
      const checkpoint = (): boolean => (db.raw.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get() as { busy: number }).busy !== 0;
      walBusy = checkpoint();
      const bytesAfter = this.databaseStats().bytes;
      audited = true; // Set first: should appending fail, no error record follows an ok one.
      record({ bytesAfter }, 'ok');
      // And the audit record just written.
      walBusy = checkpoint() || walBusy;
    } catch (e) {
      const err = toCorralError(e);
      if (!audited) {
        try {
          record({ message: err.message }, `error:${err.code}`);
        } catch {
          // A full or locked disk may refuse the record too; the caller still sees the failure.
        }
      }
      throw err;
    }
    const after = this.databaseStats();
    return { before, after, bytesFreed: before.bytes - after.bytes, walBusy, durationMs: Date.now() - started };
  }
}
