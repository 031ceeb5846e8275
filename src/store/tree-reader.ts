// Read access to one committed tree. Symlinks are followed only when asked, only when relative,
// and only while the result stays inside the vault.
import { CorralError } from '../protocol/errors.ts';
import { normalizePath, parentOf, splitPath } from '../protocol/paths.ts';
import type { Entry, ObjectStore } from './object-store.ts';
import { lookup } from './tree-diff.ts';
import { symlinkInPathError } from './tree-editor.ts';

const MAX_LINK_HOPS = 40;

export class TreeReader {
  readonly objects: ObjectStore;
  readonly root: string;

  constructor(objects: ObjectStore, root: string) {
    this.objects = objects;
    this.root = root;
  }

  rootEntry(): Entry {
    const t = this.objects.totals(this.root);
    return { name: '', kind: 'dir', mode: 0o755, hash: this.root, size: t.size, mtime: 0, files: t.files };
  }

  /** The entry at `path` itself (a symlink stays a symlink). */
  lstat(path: string): Entry | undefined {
    return path === '/' ? this.rootEntry() : lookup(this.objects, this.root, path);
  }

  /** The entry at `path` itself, or an error naming the component that is missing, a file or a symlink. */
  mustLstat(path: string): Entry {
    if (path === '/') return this.rootEntry();
    let found: Entry | undefined;
    let at = '';
    for (const part of splitPath(path)) {
      if (found?.kind === 'symlink') throw symlinkInPathError(at);
      if (found && found.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${at} is a file, not a directory`, { path: at });
      const dir = found ? found.hash : this.root;
      at += '/' + part;
      found = this.objects.lookupEntry(dir, part);
      if (!found) throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${at}`, { path: at });
    }
    return found!;
  }

  /** Follows symlinks in every component of `path`; returns the final path and its entry. */
  resolve(path: string): { path: string; entry: Entry } {
    let current = path;
    for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
      const parts = splitPath(current);
      let at = '';
      let entry: Entry = { name: '', kind: 'dir', mode: 0o755, hash: this.root, size: 0, mtime: 0 };
      let followed = false;
      for (let i = 0; i < parts.length; i++) {
        if (entry.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${at} is not a directory`, { path: at });
        at += '/' + parts[i];
        const e = this.objects.lookupEntry(entry.hash, parts[i]!);
        if (!e) throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${at}`, { path: at });
        if (e.kind === 'symlink') {
          const rest = parts.slice(i + 1).join('/');
          current = normalizePath(this.targetPath(at, this.linkTarget(e)) + (rest ? '/' + rest : ''));
          followed = true;
          break;
        }
        entry = e;
      }
      if (!followed) return { path: current, entry };
    }
    throw new CorralError('SYMLINK_LOOP', `too many levels of symlinks resolving ${path}`, { path });
  }

  linkTarget(e: Entry): string {
    return new TextDecoder().decode(this.objects.getBlob(e.hash));
  }

  private targetPath(link: string, target: string): string {
    if (target.startsWith('/'))
      throw new CorralError('INVALID_PATH', `${link} points to the absolute path ${target}, outside the vault; Corral follows only relative links that stay inside`, { path: link, target });
    try {
      return normalizePath(parentOf(link) + '/' + target);
    } catch {
      throw new CorralError('INVALID_PATH', `${link} points to ${target}, outside the vault; Corral does not follow it`, { path: link, target });
    }
  }

  readDir(path: string): Entry[] {
    const e = this.mustLstat(path);
    if (e.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${path} is not a directory`, { path });
    return [...this.objects.getTree(e.hash)];
  }

  /** A file's bytes, following in-vault symlinks. */
  readFile(path: string): Uint8Array {
    const { path: real, entry } = this.resolve(path);
    if (entry.kind === 'dir') throw new CorralError('IS_A_DIRECTORY', `${real} is a directory: list it with 'corral ls ${real}'`, { path: real });
    return this.objects.getBlob(entry.hash);
  }
}
