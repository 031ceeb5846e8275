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

/** The JSON of EncodedEntry[], written directly: this runs on every write, for every changed directory. */
function encodeSorted(sorted: readonly Entry[]): string {
  let out = '[';
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (i > 0) out += ',';
    if (!Number.isFinite(e.mode + e.size + e.mtime + (e.files ?? 0))) throw new CorralError('INTERNAL', `tree entry ${e.name} has a non-numeric field`);
    out += `[${JSON.stringify(e.name)},"${kindCode[e.kind]}",${e.mode},"${e.hash}",${e.size},${e.mtime}${e.kind === 'dir' ? `,${e.files ?? 0}` : ''}]`;
  }
  return out + ']';
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

/**
 * Directories of more than MAX_LEAF entries are stored sharded, like a hash trie: an index row
 * `{"d":depth,"c":[[hash,count,size,files] × 16]}` whose children split the entries by the
 * depth-th hex digit of sha256(name). The shape depends only on the set of entries (canonical),
 * so equal directories still have equal hashes, and a change rewrites O(log n) small rows
 * instead of one row of every entry.
 */
export const MAX_LEAF = 32;
const FANOUT = 16;
const MAX_DEPTH = 63;

/** One row of a directory's storage: a leaf of entries, or an index of 16 shards. */
export type TreeNode = { kind: 'leaf'; entries: readonly Entry[] } | { kind: 'index'; depth: number; children: readonly ShardRef[] };

/** A (sub)tree's hash with its totals: entries in it, bytes and files below. */
export interface ShardRef {
  hash: string;
  count: number;
  size: number;
  files: number;
}

type EncodedIndex = { d: number; c: [string, number, number, number][] };

export class ObjectStore {
  private readonly db: Database;
  private readonly trees = new Map<string, readonly Entry[]>();
  private readonly nodes = new Map<string, TreeNode>();
  private readonly nameHashes = new Map<string, string>();
  private readonly now: () => number;

  constructor(db: Database, now: () => number = Date.now) {
    this.db = db;
    this.now = now;
  }

  putBlob(data: Uint8Array): { hash: string; size: number } {
    const hash = sha256(data);
    // A blob that is already there is made young again: gc's grace period then protects it until
    // the commit that is about to name it lands, even when the old copy was unreachable.
    this.db.run('INSERT INTO blobs(hash, size, data, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(hash) DO UPDATE SET created_at = excluded.created_at', hash, data.length, data, this.now());
    return { hash, size: data.length };
  }

  getBlob(hash: string): Uint8Array {
    const row = this.db.get<{ data: Uint8Array }>('SELECT data FROM blobs WHERE hash = ?', hash);
    if (!row) throw new CorralError('STORAGE_CORRUPT', `blob ${hash} is missing from the database`, { hash });
    return row.data;
  }

  /** Makes a stored blob young again for gc's grace period; false when it is gone. */
  touchBlob(hash: string): boolean {
    return this.db.run('UPDATE blobs SET created_at = ? WHERE hash = ?', this.now(), hash).changes === 1;
  }

  hasBlob(hash: string): boolean {
    return this.db.get('SELECT 1 AS x FROM blobs WHERE hash = ?', hash) !== undefined;
  }

  /** Stores a directory with these entries (sharded when large); returns its hash. */
  putTree(entries: readonly Entry[]): string {
    return this.build([...entries].sort(byName), 0).hash;
  }

  /** Like putTree, with the totals. */
  putTreeRef(entries: readonly Entry[]): ShardRef {
    return this.build([...entries].sort(byName), 0);
  }

  /**
   * The directory `base` with `changes` applied (an Entry sets a name, null removes it). Only the
   * shards holding changed names are rewritten.
   */
  editTree(base: string, changes: ReadonlyMap<string, Entry | null>): ShardRef {
    return this.edit(base, 0, [...changes]);
  }

  /** A directory's entries, sorted by name (shards merged). The array is shared: never mutate it. */
  getTree(hash: string): readonly Entry[] {
    const cached = this.trees.get(hash);
    if (cached) return cached;
    const node = this.getNode(hash);
    const entries = node.kind === 'leaf' ? node.entries : this.collect(node, []).sort(byName);
    return this.remember(hash, entries);
  }

  /** One entry of a directory, found through its shards without loading the others. */
  lookupEntry(hash: string, name: string): Entry | undefined {
    const cached = this.trees.get(hash);
    if (cached) return findSorted(cached, name);
    let node = this.getNode(hash);
    while (node.kind === 'index') node = this.getNode(node.children[this.digit(name, node.depth)]!.hash);
    return findSorted(node.entries, name);
  }

  /** Entries, bytes and files of a directory, without merging its shards. */
  totals(hash: string): ShardRef {
    const node = this.getNode(hash);
    if (node.kind === 'leaf') return { hash, count: node.entries.length, ...treeTotals(node.entries) };
    let count = 0;
    let size = 0;
    let files = 0;
    for (const c of node.children) {
      count += c.count;
      size += c.size;
      files += c.files;
    }
    return { hash, count, size, files };
  }

  /** The hashes of every row a directory is stored in (itself and its shards), for gc and bundles. */
  treeRows(hash: string): string[] {
    const node = this.getNode(hash);
    if (node.kind === 'leaf') return [hash];
    return [hash, ...node.children.flatMap((c) => this.treeRows(c.hash))];
  }

  getNode(hash: string): TreeNode {
    const cached = this.nodes.get(hash);
    if (cached) return cached;
    if (hash === EMPTY_TREE) return this.rememberNode(hash, { kind: 'leaf', entries: [] });
    const row = this.db.get<{ entries: string }>('SELECT entries FROM trees WHERE hash = ?', hash);
    if (!row) throw new CorralError('STORAGE_CORRUPT', `tree ${hash} is missing from the database`, { hash });
    return this.rememberNode(hash, parseNode(row.entries));
  }

  private build(sorted: Entry[], depth: number): ShardRef {
    if (sorted.length <= MAX_LEAF || depth >= MAX_DEPTH) {
      const text = encodeSorted(sorted);
      const hash = this.putRow(text);
      if (!this.nodes.has(hash)) this.rememberNode(hash, { kind: 'leaf', entries: sorted });
      return { hash, count: sorted.length, ...treeTotals(sorted) };
    }
    const groups: Entry[][] = Array.from({ length: FANOUT }, () => []);
    for (const e of sorted) groups[this.digit(e.name, depth)]!.push(e);
    return this.putIndex(depth, groups.map((g) => this.build(g, depth + 1)));
  }

  private putIndex(depth: number, children: ShardRef[]): ShardRef {
    const text = JSON.stringify({ d: depth, c: children.map((c) => [c.hash, c.count, c.size, c.files]) } satisfies EncodedIndex);
    const hash = this.putRow(text);
    if (!this.nodes.has(hash)) this.rememberNode(hash, { kind: 'index', depth, children });
    let count = 0;
    let size = 0;
    let files = 0;
    for (const c of children) {
      count += c.count;
      size += c.size;
      files += c.files;
    }
    return { hash, count, size, files };
  }

  private edit(hash: string, depth: number, changes: [string, Entry | null][]): ShardRef {
    const node = this.getNode(hash);
    if (node.kind === 'leaf') {
      // A leaf is small and sorted: splice each change in at its place.
      const merged = [...node.entries];
      for (const [name, e] of changes) {
        const at = sortedIndex(merged, name);
        const exists = merged[at]?.name === name;
        if (e) merged.splice(at, exists ? 1 : 0, { ...e, name });
        else if (exists) merged.splice(at, 1);
      }
      return this.build(merged, depth);
    }
    const groups = new Map<number, [string, Entry | null][]>();
    for (const change of changes) {
      const d = this.digit(change[0], node.depth);
      let g = groups.get(d);
      if (!g) groups.set(d, (g = []));
      g.push(change);
    }
    const children = node.children.map((c, i) => {
      const g = groups.get(i);
      return g ? this.edit(c.hash, node.depth + 1, g) : c;
    });
    const count = children.reduce((n, c) => n + c.count, 0);
    // Shrunk to a leaf's size: collapse, so the shape stays canonical.
    if (count <= MAX_LEAF) return this.build(children.flatMap((c) => [...this.getTree(c.hash)]).sort(byName), node.depth);
    return this.putIndex(node.depth, children);
  }

  private collect(node: TreeNode, out: Entry[]): Entry[] {
    if (node.kind === 'leaf') out.push(...node.entries);
    else for (const c of node.children) this.collect(this.getNode(c.hash), out);
    return out;
  }

  private digit(name: string, depth: number): number {
    let h = this.nameHashes.get(name);
    if (h === undefined) {
      if (this.nameHashes.size >= 100_000) this.nameHashes.clear();
      h = sha256(name);
      this.nameHashes.set(name, h);
    }
    return parseInt(h[depth]!, 16);
  }

  /**
   * Always written, even when cached (the transaction that first wrote it may have rolled back),
   * and made young again when present, as putBlob does.
   */
  private putRow(text: string): string {
    const hash = sha256(text);
    this.db.run('INSERT INTO trees(hash, entries, created_at) VALUES (?, ?, ?) ON CONFLICT(hash) DO UPDATE SET created_at = excluded.created_at', hash, text, this.now());
    return hash;
  }

  private remember(hash: string, entries: readonly Entry[]): readonly Entry[] {
    if (this.trees.size >= TREE_CACHE_LIMIT) this.trees.clear();
    Object.freeze(entries);
    this.trees.set(hash, entries);
    return entries;
  }

  private rememberNode(hash: string, node: TreeNode): TreeNode {
    if (this.nodes.size >= TREE_CACHE_LIMIT) this.nodes.clear();
    if (node.kind === 'leaf') Object.freeze(node.entries);
    this.nodes.set(hash, node);
    return node;
  }
}

function parseNode(text: string): TreeNode {
  if (text.startsWith('{')) {
    const x = JSON.parse(text) as EncodedIndex;
    return { kind: 'index', depth: x.d, children: x.c.map(([hash, count, size, files]) => ({ hash, count, size, files })) };
  }
  return { kind: 'leaf', entries: decodeTree(text) };
}

/** Where `name` is, or would go, in entries sorted by name. */
function sortedIndex(entries: readonly Entry[], name: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (entries[mid]!.name < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Binary search in entries sorted by name. */
export function findSorted(entries: readonly Entry[], name: string): Entry | undefined {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const e = entries[mid]!;
    if (e.name === name) return e;
    if (e.name < name) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
