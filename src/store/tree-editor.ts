// An in-memory, copy-on-write view of one vault tree for the length of a transaction. A directory
// is its stored hash plus an overlay of changed names, so opening one costs nothing whatever its
// size; flush() writes the changed directories bottom-up (only their changed shards) and returns
// the new root. Symlinks are never followed here.
import { CorralError } from '../protocol/errors.ts';
import { baseName, parentOf, splitPath } from '../protocol/paths.ts';
import { EMPTY_TREE, type Entry, type ObjectStore } from './object-store.ts';

/** A file or symlink over the vault's max file size; every write path (edits, imports) reports it alike. */
export function fileSizeQuotaError(path: string, size: number, limit: number): CorralError {
  return new CorralError('QUOTA_EXCEEDED', `${path} is ${size} bytes, over the vault's max file size of ${limit}: raise it with 'corral quota set --max-file-size N' (nothing was changed)`, {
    path,
    size,
    limit,
    quota: 'maxFileSize',
  });
}

/** A symlink where a path needs a directory: paths inside a vault never go through links. */
export function symlinkInPathError(at: string): CorralError {
  return new CorralError('IS_A_SYMLINK', `${at} is a symlink; Corral does not follow symlinks in paths (use the link's target)`, { path: at });
}

interface DirNode {
  /** The stored directory this node starts from (or was last flushed to). */
  hash: string;
  /** Names set (an Entry) or removed (null) since `hash`. */
  changes: Map<string, Entry | null>;
  /** Subdirectories opened through this node, possibly changed. */
  children: Map<string, DirNode>;
  dirty: boolean;
}

export interface Flushed {
  hash: string;
  size: number;
  files: number;
}

export interface TreeEditorOptions {
  /** Largest file or symlink target accepted, in bytes; null for no limit. */
  maxFileSize?: number | null;
}

export class TreeEditor {
  private readonly objects: ObjectStore;
  private readonly root: DirNode;
  private readonly now: number;
  private readonly maxFileSize: number | null;

  constructor(objects: ObjectStore, rootHash: string, now: number, options: TreeEditorOptions = {}) {
    this.objects = objects;
    this.now = now;
    this.maxFileSize = options.maxFileSize ?? null;
    this.root = open(rootHash);
  }

  get mtime(): number {
    return this.now;
  }

  /** The entry at `path` without following symlinks; a synthetic entry for the root. */
  lstat(path: string): Entry | undefined {
    if (path === '/') return { name: '', kind: 'dir', mode: 0o755, hash: this.root.hash, size: 0, mtime: this.now, files: 0 };
    const dir = this.tryDir(splitPath(parentOf(path)));
    return dir && this.entryIn(dir, baseName(path));
  }

  /** The entry at `path`, with a directory's hash and totals brought up to date (it may have changed in this edit). */
  entry(path: string): Entry | undefined {
    const e = this.lstat(path);
    if (!e || e.kind !== 'dir') return e;
    const f = this.flushNode(this.dir(splitPath(path), false, path));
    return { ...e, hash: f.hash, size: f.size, files: f.files };
  }

  /** A directory's entries sorted by name. */
  readDir(path: string): Entry[] {
    const node = this.dir(splitPath(path), false, path);
    const out = new Map(this.objects.getTree(node.hash).map((e) => [e.name, e]));
    for (const [name, e] of node.changes) {
      if (e) out.set(name, e);
      else out.delete(name);
    }
    return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Puts an entry (any kind) at `path`, replacing what is there. The parent must be a directory. */
  set(path: string, entry: Omit<Entry, 'name'>): void {
    if (path === '/') throw new CorralError('INVALID_PATH', 'the root cannot be replaced');
    if (entry.kind !== 'dir' && this.maxFileSize !== null && entry.size > this.maxFileSize)
      throw fileSizeQuotaError(path, entry.size, this.maxFileSize);
    const parent = this.dir(splitPath(parentOf(path)), true, parentOf(path));
    const name = baseName(path);
    parent.children.delete(name);
    parent.changes.set(name, { ...entry, name });
  }

  /** Removes the entry at `path`; returns it, or undefined when nothing was there. */
  remove(path: string): Entry | undefined {
    if (path === '/') throw new CorralError('INVALID_PATH', 'the root cannot be removed');
    const parent = this.dir(splitPath(parentOf(path)), true, parentOf(path));
    const name = baseName(path);
    const e = this.entryIn(parent, name);
    if (e) parent.changes.set(name, null);
    parent.children.delete(name);
    return e;
  }

  /** Creates `path` and any missing parents as directories; fails on a non-directory in the way. */
  mkdirs(path: string): void {
    this.dir(splitPath(path), true, path, true);
  }

  /** Writes every changed directory and returns the new root. */
  flush(): Flushed {
    return this.flushNode(this.root);
  }

  private entryIn(node: DirNode, name: string): Entry | undefined {
    const changed = node.changes.get(name);
    if (changed !== undefined) return changed ?? undefined;
    return this.objects.lookupEntry(node.hash, name);
  }

  private flushNode(node: DirNode): Flushed {
    if (node.dirty) {
      for (const [name, child] of node.children) {
        const old = this.entryIn(node, name)!;
        // A clean child can still differ from its entry when entry() flushed it early.
        if (!child.dirty && child.hash === old.hash) continue;
        const f = this.flushNode(child);
        if (f.hash !== old.hash) node.changes.set(name, { ...old, hash: f.hash, size: f.size, files: f.files, mtime: this.now });
      }
      // The empty tree also gets its row here, so every hash a commit names is stored.
      if (node.changes.size > 0 || node.hash === EMPTY_TREE) {
        node.hash = this.objects.editTree(node.hash, node.changes).hash;
        node.changes.clear();
      }
      node.dirty = false;
    }
    const t = this.objects.totals(node.hash);
    return { hash: node.hash, size: t.size, files: t.files };
  }

  private tryDir(parts: string[]): DirNode | undefined {
    let node = this.root;
    for (const part of parts) {
      let child = node.children.get(part);
      if (!child) {
        const e = this.entryIn(node, part);
        if (!e || e.kind !== 'dir') return undefined;
        child = open(e.hash);
        node.children.set(part, child);
      }
      node = child;
    }
    return node;
  }

  private dir(parts: string[], forWrite: boolean, path: string, create = false): DirNode {
    let node = this.root;
    if (forWrite) node.dirty = true;
    let at = '';
    for (const part of parts) {
      at += '/' + part;
      let child = node.children.get(part);
      if (!child) {
        const e = this.entryIn(node, part);
        if (!e) {
          if (!create) throw new CorralError('PATH_NOT_FOUND', `no such directory: ${at}`, { path: at });
          node.changes.set(part, { name: part, kind: 'dir', mode: 0o755, hash: EMPTY_TREE, size: 0, mtime: this.now, files: 0 });
          child = open(EMPTY_TREE);
          child.dirty = true;
        } else if (e.kind === 'symlink') {
          throw symlinkInPathError(at);
        } else if (e.kind !== 'dir') {
          throw new CorralError('NOT_A_DIRECTORY', `${at} is a file, not a directory${at === path ? '' : ` (in ${path})`}`, { path: at });
        } else {
          child = open(e.hash);
        }
        node.children.set(part, child);
      }
      if (forWrite) child.dirty = true;
      node = child;
    }
    return node;
  }
}

function open(hash: string): DirNode {
  return { hash, changes: new Map(), children: new Map(), dirty: false };
}
