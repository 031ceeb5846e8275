// Walking trees and comparing them. A diff descends only into directories whose hashes differ,
// so its cost follows the size of the change, not the size of the vault.
import { joinPath, splitPath } from '../protocol/paths.ts';
import type { Entry, EntryKind, ObjectStore } from './object-store.ts';

export interface Change {
  path: string;
  change: 'added' | 'modified' | 'deleted';
  kind: EntryKind;
  oldKind?: EntryKind;
  oldSize?: number;
  newSize?: number;
  oldMode?: number;
  newMode?: number;
  oldHash?: string;
  newHash?: string;
}

export interface WalkOptions {
  /** Directory levels to descend below the start (0 = only its entries); unlimited by default. */
  maxDepth?: number;
}

/** Calls `visit` for every entry below the tree `hash`, depth first in name order. Return false to skip a directory's contents. */
export function walkTree(objects: ObjectStore, hash: string, prefix: string, visit: (path: string, entry: Entry, depth: number) => boolean | void, options: WalkOptions = {}, depth = 0): void {
  for (const e of objects.getTree(hash)) {
    const path = joinPath(prefix, e.name);
    const descend = visit(path, e, depth);
    if (e.kind === 'dir' && descend !== false && (options.maxDepth === undefined || depth < options.maxDepth)) walkTree(objects, e.hash, path, visit, options, depth + 1);
  }
}

/** The entry at `path` in tree `root`, without following symlinks. */
export function lookup(objects: ObjectStore, root: string, path: string): Entry | undefined {
  let dir = root;
  let found: Entry | undefined;
  for (const part of splitPath(path)) {
    if (found) {
      if (found.kind !== 'dir') return undefined;
      dir = found.hash;
    }
    found = objects.lookupEntry(dir, part);
    if (!found) return undefined;
  }
  return found;
}

/** Every file and symlink added, modified (content or mode) or deleted between two trees. */
export function diffTrees(objects: ObjectStore, oldTree: string, newTree: string, prefix = '/'): Change[] {
  const out: Change[] = [];
  diffInto(objects, oldTree, newTree, prefix, out);
  return out;
}

function diffInto(objects: ObjectStore, oldTree: string, newTree: string, prefix: string, out: Change[]): void {
  if (oldTree === newTree) return;
  const a = objects.getTree(oldTree);
  const b = objects.getTree(newTree);
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (x && (!y || x.name < y.name)) {
      gone(objects, joinPath(prefix, x.name), x, out);
      i++;
    } else if (y && (!x || y.name < x.name)) {
      came(objects, joinPath(prefix, y.name), y, out);
      j++;
    } else if (x && y) {
      const path = joinPath(prefix, x.name);
      if (x.kind === 'dir' && y.kind === 'dir') diffInto(objects, x.hash, y.hash, path, out);
      else if (x.kind === 'dir' || y.kind === 'dir') {
        gone(objects, path, x, out);
        came(objects, path, y, out);
      } else if (x.hash !== y.hash || x.mode !== y.mode || x.kind !== y.kind) {
        out.push({
          path,
          change: 'modified',
          kind: y.kind,
          ...(x.kind !== y.kind ? { oldKind: x.kind } : {}),
          oldSize: x.size,
          newSize: y.size,
          oldMode: x.mode,
          newMode: y.mode,
          oldHash: x.hash,
          newHash: y.hash,
        });
      }
      i++;
      j++;
    }
  }
}

function gone(objects: ObjectStore, path: string, e: Entry, out: Change[]): void {
  if (e.kind === 'dir') walkTree(objects, e.hash, path, (p, f) => void (f.kind !== 'dir' && out.push({ path: p, change: 'deleted', kind: f.kind, oldSize: f.size, oldMode: f.mode, oldHash: f.hash })));
  else out.push({ path, change: 'deleted', kind: e.kind, oldSize: e.size, oldMode: e.mode, oldHash: e.hash });
}

function came(objects: ObjectStore, path: string, e: Entry, out: Change[]): void {
  if (e.kind === 'dir') walkTree(objects, e.hash, path, (p, f) => void (f.kind !== 'dir' && out.push({ path: p, change: 'added', kind: f.kind, newSize: f.size, newMode: f.mode, newHash: f.hash })));
  else out.push({ path, change: 'added', kind: e.kind, newSize: e.size, newMode: e.mode, newHash: e.hash });
}

export interface ChangeSummary {
  added: number;
  modified: number;
  deleted: number;
  bytesAdded: number;
  bytesRemoved: number;
}

export function summarize(changes: readonly Change[]): ChangeSummary {
  const s: ChangeSummary = { added: 0, modified: 0, deleted: 0, bytesAdded: 0, bytesRemoved: 0 };
  for (const c of changes) {
    s[c.change]++;
    s.bytesAdded += c.newSize ?? 0;
    s.bytesRemoved += c.oldSize ?? 0;
  }
  return s;
}
