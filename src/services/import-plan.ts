// The plan of an import: the whole tree to build, gathered from a host directory or a tar stream
// before the commit. File data is read (and mostly written ahead as blobs) before it too; buildPlan
// writes the rest and the trees bottom-up and graftPlan puts the result into the vault, both
// inside the import's one mutate().
import { CorralError } from '../protocol/errors.ts';
import { joinPath, parentOf } from '../protocol/paths.ts';
import type { Entry, ObjectStore } from '../store/object-store.ts';
import type { TreeEditor } from '../store/tree-editor.ts';
import type { HostIdentity } from '../runtime/host-files.ts';
import { WRITE_AHEAD_BYTES, WRITE_AHEAD_FILES, checkFileSize } from '../runtime/transfer-limits.ts';
import type { TransferTally } from './transfer-tally.ts';

export interface PlanDir {
  kind: 'dir';
  mode: number;
  mtime: number;
  children: Map<string, PlanNode>;
  entry?: Entry;
}

export interface PlanFile {
  kind: 'file';
  mode: number;
  mtime: number;
  size: number;
  /** Where a directory import reads it, before the commit (host-scan.ts readScannedFiles)... */
  host?: string;
  /** ...and the dev/ino the scan saw there: the file read must be that one. */
  scanned?: HostIdentity;
  /** Held in memory until written... */
  data?: Uint8Array;
  /** ...or already written ahead of the commit. */
  hash?: string;
  entry?: Entry;
}

export interface PlanLink {
  kind: 'symlink';
  mtime: number;
  target: string;
  entry?: Entry;
}

export type PlanNode = PlanDir | PlanFile | PlanLink;

const encoder = new TextEncoder();

export function planDir(mode: number, mtime: number): PlanDir {
  return { kind: 'dir', mode, mtime, children: new Map() };
}

/** True when a link at directory depth `depth` below the import root points outside it. */
export function pointsOutside(depth: number, target: string): boolean {
  if (target.startsWith('/')) return true;
  let d = depth;
  for (const part of target.split('/')) {
    if (part === '..') {
      if (d === 0) return true;
      d--;
    } else if (part !== '' && part !== '.') d++;
  }
  return false;
}

/** Puts a node at `parts` below `root`, creating missing parents; later entries replace earlier ones, as in tar. */
export function placeInPlan(root: PlanDir, parts: string[], node: PlanNode, base: string, now: number): void {
  if (parts.length === 0) {
    if (node.kind === 'dir') {
      root.mode = node.mode;
      root.mtime = node.mtime;
      return;
    }
    throw new CorralError('INVALID_PATH', `a tar entry would replace the import root ${base} with a ${node.kind} (nothing was changed)`, { path: base });
  }
  let dir = root;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]!;
    let next = dir.children.get(part);
    if (!next) {
      next = planDir(0o755, now);
      dir.children.set(part, next);
    } else if (next.kind !== 'dir') {
      const at = joinPath(base, parts.slice(0, i + 1).join('/'));
      throw new CorralError('INVALID_PATH', `tar entry ${joinPath(base, parts.join('/'))} lies below ${at}, which the stream made a ${next.kind}; Corral never follows links while importing (nothing was changed)`, { path: at });
    }
    dir = next;
  }
  const name = parts[parts.length - 1]!;
  const existing = dir.children.get(name);
  if (existing?.kind === 'dir') {
    if (node.kind !== 'dir')
      throw new CorralError('INVALID_PATH', `tar entry ${joinPath(base, parts.join('/'))} would replace a directory of the same stream with a ${node.kind} (nothing was changed)`, { path: joinPath(base, parts.join('/')) });
    existing.mode = node.mode;
    existing.mtime = node.mtime;
    return;
  }
  dir.children.set(name, node);
}

/** Writes the blobs and trees of a planned directory, bottom-up; returns its entry. */
export function buildPlan(objects: ObjectStore, dir: PlanDir, path: string, maxFileSize: number | null, tally: TransferTally): Entry {
  const entries: Entry[] = [];
  for (const [name, node] of dir.children) {
    const at = joinPath(path, name);
    let e: Entry;
    if (node.kind === 'dir') {
      e = { ...buildPlan(objects, node, at, maxFileSize, tally), name };
      tally.dir();
    } else if (node.kind === 'file') {
      // Checked again here, against the quota as it is inside the commit's transaction.
      checkFileSize(at, node.data?.length ?? node.size, maxFileSize);
      let hash = node.hash;
      let size = node.size;
      // Written ahead in an earlier transaction: a gc in between may have taken it (its grace
      // period is all that protected it). Inside the commit's transaction no gc can run.
      if (hash !== undefined && !objects.touchBlob(hash))
        throw new CorralError('CONFLICT', `${at}: a gc removed data this import had already written: retry the import (nothing was changed)`, { path: at });
      if (hash === undefined) {
        if (node.data === undefined) throw new CorralError('INTERNAL', `${at} was planned but never read`, { path: at });
        ({ hash, size } = objects.putBlob(node.data));
        node.data = undefined;
      }
      e = { name, kind: 'file', mode: node.mode, hash, size, mtime: node.mtime };
      tally.file(size);
    } else {
      const blob = objects.putBlob(encoder.encode(node.target));
      e = { name, kind: 'symlink', mode: 0o777, hash: blob.hash, size: blob.size, mtime: node.mtime };
      tally.symlink();
    }
    node.entry = e;
    entries.push(e);
  }
  const tree = objects.putTreeRef(entries);
  const entry: Entry = { name: '', kind: 'dir', mode: dir.mode, hash: tree.hash, size: tree.size, mtime: dir.mtime, files: tree.files };
  dir.entry = entry;
  return entry;
}

/** Puts the built tree at `p`: merged into a directory already there, entry by entry, like `cp -r`. */
export function graftPlan(editor: TreeEditor, p: string, root: PlanDir): void {
  const existing = editor.lstat(p);
  if (existing && existing.kind !== 'dir')
    throw new CorralError('NOT_A_DIRECTORY', `${p} is a ${existing.kind} in the vault: import into a directory, or remove it first with 'corral rm ${p}'`, { path: p });
  if (!existing) {
    editor.mkdirs(parentOf(p));
    editor.set(p, root.entry!);
    return;
  }
  const merge = (path: string, node: PlanNode): void => {
    const there = editor.lstat(path);
    if (there?.kind === 'dir' && node.kind === 'dir') {
      for (const [name, child] of node.children) merge(joinPath(path, name), child);
    } else {
      editor.set(path, node.entry!);
    }
  };
  for (const [name, child] of root.children) merge(joinPath(p, name), child);
}

/**
 * Hands file data read for an import to `write` in batches of WRITE_AHEAD_BYTES or
 * WRITE_AHEAD_FILES, so a big import never holds all of it in memory; what is left over when the
 * reading ends goes in with the commit.
 */
export function writeAheadBatcher(write: (nodes: PlanFile[]) => void): (node: PlanFile) => void {
  let nodes: PlanFile[] = [];
  let bytes = 0;
  return (node) => {
    nodes.push(node);
    bytes += node.size;
    if (bytes >= WRITE_AHEAD_BYTES || nodes.length >= WRITE_AHEAD_FILES) {
      write(nodes);
      nodes = [];
      bytes = 0;
    }
  };
}
