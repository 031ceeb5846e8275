// Content-addressed objects: blobs (file contents and symlink targets) and trees (one row per
// directory state). Both are immutable, so parsed trees are cached freely.
import { createHash } from 'node:crypto';
import { CorralError } from '../protocol/errors.ts';
import type { Database } from './database.ts';

export type EntryKind = 'file' | 'dir' | 'symlink';

export interface Entry {
  name: string;
  kind: EntryKind;
  /** Permission bits (0o644, 0o755 …); 0o777 for symlinks, 0o755 for directories. */
  mode: number;
  /** Blob hash for files and symlinks (the target), tree hash for directories. */
  hash: string;
  /** Bytes: the file's length, the target's length, or the sum of files below a directory. */
  size: number;
  /** Milliseconds since the epoch. */
  mtime: number;
  /** Directories only: files and symlinks below. */
  files?: number;
}

type EncodedEntry = [string, 'f' | 'd' | 'l', number, string, number, number, number?];
const kindCode = { file: 'f', dir: 'd', symlink: 'l' } as const;
const codeKind = { f: 'file', d: 'dir', l: 'symlink' } as const;

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function byName(a: Entry, b: Entry): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function encodeSorted(sorted: readonly Entry[]): string {
  return JSON.stringify(
    sorted.map((e): EncodedEntry =>
      e.kind === 'dir'
        ? [e.name, 'd', e.mode, e.hash, e.size, e.mtime, e.files ?? 0]
        : [e.name, kindCode[e.kind], e.mode, e.hash, e.size, e.mtime],
    ),
  );
}

export function encodeTree(entries: readonly Entry[]): string {
  return encodeSorted([...entries].sort(byName));
}

export function decodeTree(text: string): Entry[] {
  return (JSON.parse(text) as EncodedEntry[]).map(([name, k, mode, hash, size, mtime, files]) =>
    k === 'd' ? { name, kind: 'dir', mode, hash, size, mtime, files: files ?? 0 } : { name, kind: codeKind[k], mode, hash, size, mtime },
  );
}

export const EMPTY_TREE = sha256(encodeTree([]));

/** Totals of a tree: bytes and files (files and symlinks) below it. */
export function treeTotals(entries: readonly Entry[]): { size: number; files: number } {
  let size = 0;
  let files = 0;
  for (const e of entries) {
    size += e.size;
    files += e.kind === 'dir' ? (e.files ?? 0) : 1;
  }
  return { size, files };
}

const TREE_CACHE_LIMIT = 20_000;

export class ObjectStore {
  private readonly db: Database;
  private readonly trees = new Map<string, readonly Entry[]>();
  private readonly now: () => number;

  constructor(db: Database, now: () => number = Date.now) {
    this.db = db;
    this.now = now;
  }

  putBlob(data: Uint8Array): { hash: string; size: number } {
    const hash = sha256(data);
    this.db.run('INSERT OR IGNORE INTO blobs(hash, size, data, created_at) VALUES (?, ?, ?, ?)', hash, data.length, data, this.now());
    return { hash, size: data.length };
  }

  getBlob(hash: string): Uint8Array {
    const row = this.db.get<{ data: Uint8Array }>('SELECT data FROM blobs WHERE hash = ?', hash);
    if (!row) throw new CorralError('STORAGE_CORRUPT', `blob ${hash} is missing from the database`, { hash });
    return row.data;
  }

  hasBlob(hash: string): boolean {
    return this.db.get('SELECT 1 AS x FROM blobs WHERE hash = ?', hash) !== undefined;
  }

  putTree(entries: readonly Entry[]): string {
    const sorted = [...entries].sort(byName);
    const text = encodeSorted(sorted);
    const hash = sha256(text);
    // Always written, even when cached: the transaction that first wrote it may have rolled back.
    this.db.run('INSERT OR IGNORE INTO trees(hash, entries, created_at) VALUES (?, ?, ?)', hash, text, this.now());
    if (!this.trees.has(hash)) this.remember(hash, sorted.map((e) => ({ ...e })));
    return hash;
  }

  /** A directory's entries, sorted by name. The array is shared: never mutate it. */
  getTree(hash: string): readonly Entry[] {
    const cached = this.trees.get(hash);
    if (cached) return cached;
    if (hash === EMPTY_TREE) return this.remember(hash, []);
    const row = this.db.get<{ entries: string }>('SELECT entries FROM trees WHERE hash = ?', hash);
    if (!row) throw new CorralError('STORAGE_CORRUPT', `tree ${hash} is missing from the database`, { hash });
    return this.remember(hash, decodeTree(row.entries));
  }

  private remember(hash: string, entries: readonly Entry[]): readonly Entry[] {
    if (this.trees.size >= TREE_CACHE_LIMIT) this.trees.clear();
    Object.freeze(entries);
    this.trees.set(hash, entries);
    return entries;
  }
}
