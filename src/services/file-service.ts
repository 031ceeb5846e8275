// Files of a vault: read them at any version, change them at the head. Each change is one commit.
import { CorralError } from '../protocol/errors.ts';
import { baseName, isWithin, joinPath, normalizePath, parentOf } from '../protocol/paths.ts';
import type { Caller, Commit, CorralStore, Vault } from '../store/corral-store.ts';
import type { Entry, EntryKind } from '../store/object-store.ts';
import { copyPathAttributes, dropPathAttributes, movePathAttributes } from '../store/path-attributes.ts';
import { TreeReader } from '../store/tree-reader.ts';
import type { TreeEditor } from '../store/tree-editor.ts';
import type { ServiceDeps } from './corral.ts';
import { checkFileSize } from '../runtime/transfer-limits.ts';

export interface FileStat {
  path: string;
  name: string;
  kind: EntryKind;
  mode: number;
  size: number;
  mtime: number;
  hash: string;
  /** Directories: files below. */
  files?: number;
  /** Symlinks: where the link points. */
  target?: string;
}

export interface TreeNode extends FileStat {
  children?: TreeNode[];
}

export interface WriteOptions {
  append?: boolean;
  /** Permission bits for a new file (default 0o644); an existing file keeps its own unless given. */
  mode?: number;
  message?: string;
}

export interface ChangeResult {
  commit: Commit | null;
}

function checkMode(mode: number | undefined): void {
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777))
    throw new CorralError('INVALID_ARGUMENT', `mode must be octal permission bits (0-7777), got ${mode}`, { mode });
}

export class FileService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  /** A reader of the vault's head, or of `ref` (a checkpoint, commit id, HEAD~N). */
  reader(vault: string, ref?: string): TreeReader {
    if (ref === undefined) return new TreeReader(this.store.objects, this.store.headTree(vault));
    return new TreeReader(this.store.objects, this.store.resolveRef(this.store.getVault(vault), ref).tree);
  }

  private describe(reader: TreeReader, path: string, e: Entry): FileStat {
    return {
      path,
      name: e.name,
      kind: e.kind,
      mode: e.mode,
      size: e.size,
      mtime: e.mtime,
      hash: e.hash,
      ...(e.kind === 'dir' ? { files: e.files ?? 0 } : {}),
      ...(e.kind === 'symlink' ? { target: reader.linkTarget(e) } : {}),
    };
  }

  stat(vault: string, path: string, ref?: string): FileStat {
    const p = normalizePath(path);
    const r = this.reader(vault, ref);
    return this.describe(r, p, r.mustLstat(p));
  }

  /** A directory's entries (or the one entry when `path` is not a directory). Dotfiles only with `all`. */
  ls(vault: string, path: string, options: { all?: boolean; ref?: string } = {}): FileStat[] {
    const p = normalizePath(path);
    const r = this.reader(vault, options.ref);
    const e = r.mustLstat(p);
    if (e.kind !== 'dir') return [this.describe(r, p, e)];
    return r
      .readDir(p)
      .filter((c) => options.all || !c.name.startsWith('.'))
      .map((c) => this.describe(r, joinPath(p, c.name), c));
  }

  cat(vault: string, path: string, ref?: string): Uint8Array {
    return this.reader(vault, ref).readFile(normalizePath(path));
  }

  tree(vault: string, path: string, options: { depth?: number; all?: boolean; ref?: string } = {}): TreeNode {
    const p = normalizePath(path);
    const r = this.reader(vault, options.ref);
    const build = (at: string, e: Entry, level: number): TreeNode => {
      const node: TreeNode = this.describe(r, at, e);
      if (e.kind === 'dir' && (options.depth === undefined || level < options.depth))
        node.children = r.objects
          .getTree(e.hash)
          .filter((c) => options.all || !c.name.startsWith('.'))
          .map((c) => build(joinPath(at, c.name), c, level + 1));
      return node;
    };
    return build(p, r.mustLstat(p), 0);
  }

  private change<T>(vault: string, op: string, target: string, message: string, fn: (editor: TreeEditor, vault: Vault) => T, details: Record<string, unknown> = {}): T & ChangeResult {
    const { value, commit } = this.store.mutate(this.caller, vault, { op, target, message, details }, fn);
    return { ...value, commit };
  }

  write(vault: string, path: string, data: Uint8Array, options: WriteOptions = {}): FileStat & ChangeResult {
    const p = normalizePath(path);
    if (p === '/') throw new CorralError('IS_A_DIRECTORY', 'cannot write to the root directory: give a file path', { path: p });
    checkMode(options.mode);
    return this.change(vault, options.append ? 'file.append' : 'file.write', p, options.message ?? `${options.append ? 'append to' : 'write'} ${p}`, (editor, v) => {
      const existing = editor.lstat(p);
      if (existing?.kind === 'dir') throw new CorralError('IS_A_DIRECTORY', `${p} is a directory`, { path: p });
      if (existing?.kind === 'symlink') throw new CorralError('IS_A_SYMLINK', `${p} is a symlink; Corral does not write through links: write to its target, or 'corral rm ${p}' first`, { path: p });
      // Checked before anything is allocated or stored: past MAX_ENTRY_BYTES, SQLite would fail with a raw error.
      checkFileSize(p, (options.append && existing ? existing.size : 0) + data.length, v.quota.maxFileSize);
      let content = data;
      if (options.append && existing) {
        const old = this.store.objects.getBlob(existing.hash);
        content = new Uint8Array(old.length + data.length);
        content.set(old, 0);
        content.set(data, old.length);
      }
      editor.mkdirs(parentOf(p));
      const blob = this.store.objects.putBlob(content);
      const mode = options.mode ?? existing?.mode ?? 0o644;
      editor.set(p, { kind: 'file', mode, hash: blob.hash, size: blob.size, mtime: editor.mtime });
      return { path: p, name: baseName(p), kind: 'file' as const, mode, size: blob.size, mtime: editor.mtime, hash: blob.hash };
    }, { bytes: data.length });
  }

  symlink(vault: string, target: string, path: string): FileStat & ChangeResult {
    const p = normalizePath(path);
    if (typeof target !== 'string' || target.length === 0 || target.includes('\0') || target.length > 4096)
      throw new CorralError('INVALID_ARGUMENT', 'a symlink target must be 1-4096 bytes without NUL', {});
    return this.change(vault, 'file.symlink', p, `link ${p} -> ${target}`, (editor) => {
      if (editor.lstat(p)) throw new CorralError('PATH_EXISTS', `${p} already exists`, { path: p });
      editor.mkdirs(parentOf(p));
      const blob = this.store.objects.putBlob(new TextEncoder().encode(target));
      editor.set(p, { kind: 'symlink', mode: 0o777, hash: blob.hash, size: blob.size, mtime: editor.mtime });
      return { path: p, name: baseName(p), kind: 'symlink' as const, mode: 0o777, size: blob.size, mtime: editor.mtime, hash: blob.hash, target };
    });
  }

  mkdir(vault: string, path: string, options: { parents?: boolean } = {}): ChangeResult & { path: string } {
    const p = normalizePath(path);
    return this.change(vault, 'file.mkdir', p, `mkdir ${p}`, (editor) => {
      const existing = editor.lstat(p);
      if (existing) {
        if (options.parents && existing.kind === 'dir') return { path: p };
        throw new CorralError('PATH_EXISTS', `${p} already exists`, { path: p });
      }
      if (!options.parents && editor.lstat(parentOf(p))?.kind !== 'dir')
        throw new CorralError('PATH_NOT_FOUND', `parent directory ${parentOf(p)} does not exist: use -p to create it`, { path: parentOf(p) });
      editor.mkdirs(p);
      return { path: p };
    });
  }

  rm(vault: string, path: string, options: { recursive?: boolean; force?: boolean } = {}): ChangeResult & { path: string; removed: number } {
    const p = normalizePath(path);
    if (p === '/') throw new CorralError('INVALID_PATH', "refusing to remove the vault root: remove its entries, or delete the vault with 'corral vault delete'", { path: p });
    return this.change(vault, 'file.rm', p, `rm ${p}`, (editor, v) => {
      const e = editor.lstat(p);
      if (!e) {
        if (options.force) return { path: p, removed: 0 };
        throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${p}`, { path: p });
      }
      if (e.kind === 'dir' && !options.recursive) throw new CorralError('IS_A_DIRECTORY', `${p} is a directory: use -r to remove it and its contents`, { path: p });
      editor.remove(p);
      dropPathAttributes(this.store.db, v.id, p);
      return { path: p, removed: e.kind === 'dir' ? (e.files ?? 0) : 1 };
    });
  }

  /** Copies a file, link or (with `recursive`) a directory; O(1) however large, as trees are shared. */
  cp(vault: string, from: string, to: string, options: { recursive?: boolean } = {}): ChangeResult & { from: string; to: string } {
    const src = normalizePath(from);
    let dst = normalizePath(to);
    return this.change(vault, 'file.cp', dst, `cp ${src} ${dst}`, (editor, v) => {
      const e = editor.entry(src);
      if (!e) throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${src}`, { path: src });
      if (e.kind === 'dir' && !options.recursive) throw new CorralError('IS_A_DIRECTORY', `${src} is a directory: use -r to copy it`, { path: src });
      if (editor.lstat(dst)?.kind === 'dir') dst = joinPath(dst, e.name || 'root');
      if (dst === src) throw new CorralError('INVALID_ARGUMENT', `${src} and ${dst} are the same`, { from: src, to: dst });
      this.checkTarget(editor, dst, e);
      editor.mkdirs(parentOf(dst));
      editor.set(dst, { ...e, mtime: editor.mtime });
      // What was at the destination is replaced, its tags and metadata with it.
      dropPathAttributes(this.store.db, v.id, dst);
      copyPathAttributes(this.store.db, v.id, src, dst);
      return { from: src, to: dst };
    });
  }

  mv(vault: string, from: string, to: string): ChangeResult & { from: string; to: string } {
    const src = normalizePath(from);
    let dst = normalizePath(to);
    if (src === '/') throw new CorralError('INVALID_PATH', 'the vault root cannot be moved', { path: src });
    return this.change(vault, 'file.mv', src, `mv ${src} ${dst}`, (editor, v) => {
      const e = editor.entry(src);
      if (!e) throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${src}`, { path: src });
      if (editor.lstat(dst)?.kind === 'dir' && dst !== src) dst = joinPath(dst, e.name);
      if (dst === src) return { from: src, to: dst };
      if (e.kind === 'dir' && isWithin(dst, src))
        throw new CorralError('INVALID_ARGUMENT', `cannot move ${src} into itself (${dst})`, { from: src, to: dst });
      this.checkTarget(editor, dst, e);
      editor.mkdirs(parentOf(dst));
      editor.remove(src);
      editor.set(dst, e);
      movePathAttributes(this.store.db, v.id, src, dst);
      return { from: src, to: dst };
    });
  }

  /** What may be replaced by a cp or mv: a file by a file or link; an empty directory by a directory. */
  private checkTarget(editor: TreeEditor, dst: string, incoming: Entry): void {
    const existing = editor.lstat(dst);
    if (!existing) return;
    if (existing.kind === 'dir') {
      if (incoming.kind !== 'dir') throw new CorralError('IS_A_DIRECTORY', `${dst} is a directory`, { path: dst });
      if ((existing.files ?? 0) > 0 || editor.readDir(dst).length > 0) throw new CorralError('DIRECTORY_NOT_EMPTY', `${dst} exists and is not empty`, { path: dst });
    } else if (incoming.kind === 'dir') {
      throw new CorralError('NOT_A_DIRECTORY', `cannot replace the file ${dst} with a directory`, { path: dst });
    }
  }

  touch(vault: string, path: string): FileStat & ChangeResult {
    const p = normalizePath(path);
    return this.change(vault, 'file.touch', p, `touch ${p}`, (editor) => {
      const e = editor.lstat(p);
      if (e) {
        const next = { ...e, mtime: editor.mtime };
        if (p !== '/') editor.set(p, next);
        return { path: p, name: e.name, kind: e.kind, mode: e.mode, size: e.size, mtime: editor.mtime, hash: e.hash };
      }
      editor.mkdirs(parentOf(p));
      const blob = this.store.objects.putBlob(new Uint8Array(0));
      editor.set(p, { kind: 'file', mode: 0o644, hash: blob.hash, size: 0, mtime: editor.mtime });
      return { path: p, name: baseName(p), kind: 'file' as const, mode: 0o644, size: 0, mtime: editor.mtime, hash: blob.hash };
    });
  }

  chmod(vault: string, path: string, mode: number): FileStat & ChangeResult {
    const p = normalizePath(path);
    checkMode(mode);
    return this.change(vault, 'file.chmod', p, `chmod ${mode.toString(8)} ${p}`, (editor) => {
      if (p === '/') throw new CorralError('INVALID_PATH', "the vault root's mode cannot be changed: chmod a path inside it", { path: p });
      const e = editor.lstat(p);
      if (!e) throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${p}`, { path: p });
      if (e.kind === 'symlink') throw new CorralError('IS_A_SYMLINK', `${p} is a symlink; links have no mode of their own`, { path: p });
      editor.set(p, { ...e, mode });
      return { path: p, name: e.name, kind: e.kind, mode, size: e.size, mtime: e.mtime, hash: e.hash };
    });
  }
}
