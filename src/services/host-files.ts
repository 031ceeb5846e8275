// Reading and writing files, links and directories on the host for imports and exports. Nothing
// here follows a symlink: opens use O_NOFOLLOW, and a name in the way is replaced, not written through.
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { MAX_COMPONENT_BYTES } from '../protocol/paths.ts';
import { MAX_ENTRY_BYTES, entryTooLarge } from './transfer-limits.ts';

const encoder = new TextEncoder();

/** The errno code (ENOENT, ELOOP, ...) of a failed host call, if any. */
export function errnoCode(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

/** A host failure as a CorralError; an I/O error names the host path it happened on. */
export function hostError(e: unknown, path: string): CorralError {
  if (e instanceof CorralError) return e;
  const err = toCorralError(e);
  if (err.code === 'HOST_IO_ERROR') return new CorralError('HOST_IO_ERROR', `${path}: ${err.message}`, { ...err.details, hostPath: path }, e);
  return err;
}

export function unsafeHostPath(hostPath: string, what: string): CorralError {
  return new CorralError('UNSAFE_HOST_PATH', `${hostPath} ${what}; Corral never writes through a symlink on the host: remove it, or export into an empty directory`, { hostPath });
}

/** Fails unless a tree entry name is safe to use as one host path component. */
export function checkEntryName(name: string, dir: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || encoder.encode(name).length > MAX_COMPONENT_BYTES)
    throw new CorralError('STORAGE_CORRUPT', `the vault holds an entry with an unsafe name ${JSON.stringify(name.slice(0, 80))} in ${dir}; refusing to export it`, { dir, name: name.slice(0, 80) });
}

/** Makes the export destination `dest` (and its parents) when missing; returns true when it did. */
export function ensureHostDir(dest: string): boolean {
  try {
    const st = statSync(dest, { throwIfNoEntry: false });
    if (!st) {
      mkdirSync(dest, { recursive: true, mode: 0o755 });
      return true;
    }
    if (!st.isDirectory()) throw new CorralError('NOT_A_DIRECTORY', `${dest} exists and is not a directory: export into a directory`, { hostPath: dest });
    return false;
  } catch (e) {
    throw hostError(e, dest);
  }
}

/**
 * Reads a file found by the scan. O_NOFOLLOW refuses a symlink put there since; O_NONBLOCK makes a
 * fifo fail instead of hang; reads are bounded, so even a device swapped in cannot run forever.
 */
export function readHostFile(path: string, vaultPath: string, expected: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    throw hostError(e, path);
  }
  try {
    const buf = Buffer.allocUnsafeSlow(expected);
    let off = 0;
    while (off < expected) {
      const n = readSync(fd, buf, off, expected - off, null);
      if (n === 0) return buf.subarray(0, off);
      off += n;
    }
    // Grown since the scan: take the rest too, up to the largest file Corral stores.
    const more: Buffer[] = [];
    let total = off;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_ENTRY_BYTES) throw entryTooLarge(vaultPath, total);
      more.push(chunk.subarray(0, n));
    }
    return more.length ? Buffer.concat([buf, ...more]) : buf;
  } catch (e) {
    throw hostError(e, path);
  } finally {
    closeSync(fd);
  }
}

/** Creates a file (or truncates one, when `existing` may be there) without ever following a symlink. */
export function writeHostFile(path: string, data: Uint8Array, mode: number, mtime: number, existing: boolean): void {
  const open = (flags: number): number => {
    try {
      return openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | flags, mode);
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ELOOP') throw unsafeHostPath(path, 'is a symlink');
      if (code === 'EISDIR') throw new CorralError('IS_A_DIRECTORY', `${path} is a directory on the host; not replacing it with a file`, { hostPath: path });
      throw e;
    }
  };
  // A new name must really be new (O_EXCL): nothing planted there meanwhile, not even a hard link, is written into.
  let fd = open(existing ? 0 : fsc.O_EXCL);
  try {
    if (existing) {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new CorralError('HOST_IO_ERROR', `${path} is not a regular file on the host; not writing into it`, { hostPath: path });
      if (st.nlink > 1) {
        // A hard link shares its content with another file: replace the name, do not write through it.
        closeSync(fd);
        fd = -1;
        unlinkSync(path);
        fd = open(fsc.O_EXCL);
      } else {
        ftruncateSync(fd, 0);
      }
    }
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fchmodSync(fd, mode);
    futimesSync(fd, mtime / 1000, mtime / 1000);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Creates a symlink; an existing file or link at `path` is replaced (unlink never follows a link). */
export function writeHostLink(path: string, target: string, mtime: number, existing: boolean): void {
  try {
    symlinkSync(target, path);
  } catch (e) {
    if (!existing || errnoCode(e) !== 'EEXIST') throw e;
    if (lstatSync(path).isDirectory()) throw new CorralError('IS_A_DIRECTORY', `${path} is a directory on the host; not replacing it with a symlink`, { hostPath: path });
    unlinkSync(path);
    symlinkSync(target, path);
  }
  lutimesSync(path, mtime / 1000, mtime / 1000);
}

/** Makes a directory; when `check`, an existing one is accepted only if it is a real directory. Returns true when made. */
export function makeHostDir(path: string, check: boolean): boolean {
  try {
    mkdirSync(path, 0o700);
    return true;
  } catch (e) {
    if (!check || errnoCode(e) !== 'EEXIST') throw e;
  }
  const st = lstatSync(path);
  if (st.isSymbolicLink()) throw unsafeHostPath(path, 'is a symlink where the vault has a directory');
  if (st.isDirectory()) return false;
  // A file where the vault has a directory: replace it (unlink does not follow anything).
  unlinkSync(path);
  mkdirSync(path, 0o700);
  return true;
}

/** Sets a directory's mode and mtime through a descriptor opened without following a symlink. */
export function finishHostDir(path: string, mode: number, mtime: number): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ELOOP' || code === 'ENOTDIR') throw unsafeHostPath(path, 'was replaced while exporting');
    throw e;
  }
  try {
    fchmodSync(fd, mode);
    futimesSync(fd, mtime / 1000, mtime / 1000);
  } finally {
    closeSync(fd);
  }
}
