// Reading and writing files, links and directories on the host: imports, exports and checkouts. Nothing
// here follows a symlink: opens use O_NOFOLLOW, and a name in the way is replaced, not written through.
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { MAX_COMPONENT_BYTES } from '../protocol/paths.ts';
import { checkFileSize } from './transfer-limits.ts';

const encoder = new TextEncoder();

/** The errno code (ENOENT, ELOOP, ...) of a failed host call, if any. */
export function errnoCode(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A host symlink's target as text, or undefined when it is not valid UTF-8 (a vault cannot hold it). Host errors are thrown as they are. */
export function readLinkText(hostPath: string): string | undefined {
  const raw = readlinkSync(hostPath, { encoding: 'buffer' });
  try {
    return strictUtf8.decode(raw);
  } catch {
    return undefined;
  }
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

/** Which file a host path named when it was scanned: a later swap shows as another dev/ino. */
export interface HostIdentity {
  dev: number;
  ino: number;
}

/**
 * A host directory an export writes into, as it was when Corral made or checked it. Node has no
 * openat(), so names below it are opened by path: checkHostDir before (and after) each open shows
 * when the directory was swapped meanwhile, e.g. for a symlink to somewhere else.
 */
export interface HostDir extends HostIdentity {
  path: string;
  /** The export root may be a symlink the caller named; directories below it never are. */
  follow: boolean;
}

function sameFile(a: HostIdentity, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** The identity of the directory at `path` now (lstat unless `follow`). */
function hostDirAt(path: string, follow = false): HostDir {
  const st = follow ? statSync(path) : lstatSync(path);
  if (!st.isDirectory()) throw unsafeHostPath(path, 'is not a directory any more');
  return { path, dev: st.dev, ino: st.ino, follow };
}

/** Fails with UNSAFE_HOST_PATH unless `dir.path` still names the directory it named when checked. */
export function checkHostDir(dir: HostDir): void {
  const st = dir.follow ? statSync(dir.path, { throwIfNoEntry: false }) : lstatSync(dir.path, { throwIfNoEntry: false });
  if (!st || !st.isDirectory() || !sameFile(dir, st)) throw unsafeHostPath(dir.path, 'was replaced while exporting');
}

/** Makes the export destination `dest` (and its parents) when missing; `created` tells whether it did. */
export function ensureHostDir(dest: string): { created: boolean; dir: HostDir } {
  try {
    const st = statSync(dest, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) throw new CorralError('NOT_A_DIRECTORY', `${dest} exists and is not a directory: export into a directory`, { hostPath: dest });
    if (!st) mkdirSync(dest, { recursive: true, mode: 0o755 });
    return { created: !st, dir: hostDirAt(dest, true) };
  } catch (e) {
    throw hostError(e, dest);
  }
}

/**
 * Reads a file found by the scan. O_NOFOLLOW refuses a symlink put there since; O_NONBLOCK makes a
 * fifo fail instead of hang; reads are bounded, so even a device swapped in cannot run forever.
 * O_NOFOLLOW guards only the last component: a directory on the way swapped for a symlink would
 * lead elsewhere, so the opened file must be the very one the scan saw (`scanned`: its dev/ino).
 */
export function readHostFile(path: string, vaultPath: string, expected: number, scanned?: HostIdentity, maxFileSize: number | null = null): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    if (errnoCode(e) === 'ELOOP') throw changedWhileImporting(path, vaultPath);
    throw hostError(e, path);
  }
  try {
    if (scanned && !sameFile(scanned, fstatSync(fd))) throw changedWhileImporting(path, vaultPath);
    const buf = Buffer.allocUnsafeSlow(expected);
    let off = 0;
    while (off < expected) {
      const n = readSync(fd, buf, off, expected - off, null);
      if (n === 0) return buf.subarray(0, off);
      off += n;
    }
    // Grown since the scan: take the rest too, up to the vault's max file size or Corral's limit.
    const more: Buffer[] = [];
    let total = off;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      checkFileSize(vaultPath, total, maxFileSize);
      more.push(chunk.subarray(0, n));
    }
    return more.length ? Buffer.concat([buf, ...more]) : buf;
  } catch (e) {
    throw hostError(e, path);
  } finally {
    closeSync(fd);
  }
}

function changedWhileImporting(path: string, vaultPath: string): CorralError {
  return new CorralError(
    'UNSAFE_HOST_PATH',
    `${path} was replaced while importing (a directory swapped for a symlink would import files from elsewhere); nothing was changed: retry once the source stops changing`,
    { hostPath: path, path: vaultPath },
  );
}

/**
 * Creates a file (or truncates one, when `existing` may be there) without ever following a symlink.
 * `parent`, the directory it goes into, is checked again once the file is open, before any byte is written.
 */
export function writeHostFile(path: string, data: Uint8Array, mode: number, mtime: number, existing: boolean, parent?: HostDir): void {
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
  // A new name must really be new (O_EXCL): nothing planted there meanwhile, not even a hard link,
  // is written into. Where a file may exist, creating is still tried first, so that whether this
  // call made the file is known.
  let created = true;
  let fd: number;
  try {
    fd = open(fsc.O_EXCL);
  } catch (e) {
    if (!existing || errnoCode(e) !== 'EEXIST') throw e;
    created = false;
    fd = open(0);
  }
  try {
    if (parent) {
      try {
        checkHostDir(parent);
      } catch (e) {
        // Opened through a directory swapped in meanwhile: nothing is written, and a file just made there is removed again.
        if (created) removeIfSame(path, fstatSync(fd));
        throw e;
      }
    }
    if (existing) {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new CorralError('HOST_IO_ERROR', `${path} is not a regular file on the host; not writing into it`, { hostPath: path });
      if (st.nlink > 1) {
        // A hard link shares its content with another file: replace the name, do not write through it.
        closeSync(fd);
        fd = -1;
        if (parent) checkHostDir(parent);
        unlinkSync(path);
        fd = open(fsc.O_EXCL);
        if (parent) checkHostDir(parent);
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

/** Fails early when the output file `target` cannot be written: taken (unless `force`) or a directory. */
export function checkOutputFile(target: string, force: boolean): void {
  let st: Stats | undefined;
  try {
    st = lstatSync(target, { throwIfNoEntry: false });
  } catch (e) {
    throw hostError(e, target);
  }
  if (st?.isDirectory()) throw new CorralError('IS_A_DIRECTORY', `${target} is a directory: give a file name to write`, { hostPath: target });
  if (st && !force) throw new CorralError('PATH_EXISTS', `${target} already exists: pick another file or pass --force to replace it`, { hostPath: target });
}

/**
 * Creates a new, empty file beside `target` (in the same directory, so it can be linked or renamed
 * into place) for output that must not be seen half-written: publishHostFile moves it to `target`.
 */
export function createTempBeside(target: string): { path: string; fd: number } {
  // The name's start is kept short enough that the temp name fits in one path component.
  const path = join(dirname(target), `.${basename(target).slice(0, 64)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    return { path, fd: openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644) };
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new CorralError('PATH_NOT_FOUND', `no such directory: ${dirname(target)} (create it first, or pick another place for the file)`, { hostPath: dirname(target) });
    throw hostError(e, target);
  }
}

/**
 * Puts the finished file `tmp` at `target`, which then appears whole or not at all. Without
 * `replace`, link() takes the name only if it is still free (rename() would replace a file made
 * meanwhile); with it, rename() replaces the name: a file there, or a hard link to one elsewhere,
 * is left as it was, never truncated or written through. `tmp` is gone afterwards either way.
 */
export function publishHostFile(tmp: string, target: string, replace: boolean): void {
  try {
    if (replace) renameSync(tmp, target);
    else {
      try {
        linkSync(tmp, target);
      } catch (e) {
        // A filesystem without hard links (FAT, some network mounts): the name is checked, then taken.
        const code = errnoCode(e);
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
        if (lstatSync(target, { throwIfNoEntry: false })) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
        renameSync(tmp, target);
      }
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = errnoCode(e);
    if (code === 'EEXIST') throw new CorralError('PATH_EXISTS', `${target} already exists: pick another file or pass --force to replace it`, { hostPath: target });
    if (code === 'EISDIR') throw new CorralError('IS_A_DIRECTORY', `${target} is a directory: give a file name to write`, { hostPath: target });
    throw hostError(e, target);
  }
  rmSync(tmp, { force: true });
}

/** Best effort: unlinks `path` if it still names the file `st`. */
function removeIfSame(path: string, st: Stats): void {
  try {
    const now = lstatSync(path, { throwIfNoEntry: false });
    if (now && sameFile(st, now)) unlinkSync(path);
  } catch {
    // The failure being reported matters more than this clean-up.
  }
}

/** Creates a symlink; an existing file or link at `path` is replaced (unlink never follows a link). */
export function writeHostLink(path: string, target: string, mtime: number, existing: boolean, parent?: HostDir): void {
  try {
    symlinkSync(target, path);
  } catch (e) {
    if (!existing || errnoCode(e) !== 'EEXIST') throw e;
    if (lstatSync(path).isDirectory()) throw new CorralError('IS_A_DIRECTORY', `${path} is a directory on the host; not replacing it with a symlink`, { hostPath: path });
    if (parent) checkHostDir(parent);
    unlinkSync(path);
    symlinkSync(target, path);
  }
  if (parent) checkHostDir(parent);
  lutimesSync(path, mtime / 1000, mtime / 1000);
}

/**
 * Makes a directory in `parent`; when `check`, an existing one is accepted only if it is a real
 * directory. Returns it with `made` true when it was made.
 */
export function makeHostDir(path: string, check: boolean, parent?: HostDir): { made: boolean; dir: HostDir } {
  const made = (): { made: boolean; dir: HostDir } => {
    const dir = hostDirAt(path);
    // Made (and identified) in the directory checked before, not in one swapped in meanwhile.
    if (parent) checkHostDir(parent);
    return { made: true, dir };
  };
  try {
    mkdirSync(path, 0o700);
    return made();
  } catch (e) {
    if (!check || errnoCode(e) !== 'EEXIST') throw e;
  }
  const st = lstatSync(path);
  if (st.isSymbolicLink()) throw unsafeHostPath(path, 'is a symlink where the vault has a directory');
  if (st.isDirectory()) {
    const dir = { path, dev: st.dev, ino: st.ino, follow: false };
    if (parent) checkHostDir(parent);
    return { made: false, dir };
  }
  // A file where the vault has a directory: replace it (unlink does not follow anything).
  if (parent) checkHostDir(parent);
  unlinkSync(path);
  mkdirSync(path, 0o700);
  return made();
}

/**
 * Sets a directory's mode and mtime through a descriptor opened without following a symlink; with
 * `made`, the descriptor must be that very directory.
 */
export function finishHostDir(path: string, mode: number, mtime: number, made?: HostDir): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | (made?.follow ? 0 : fsc.O_NOFOLLOW));
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ELOOP' || code === 'ENOTDIR') throw unsafeHostPath(path, 'was replaced while exporting');
    throw e;
  }
  try {
    if (made && !sameFile(made, fstatSync(fd))) throw unsafeHostPath(path, 'was replaced while exporting');
    fchmodSync(fd, mode);
    futimesSync(fd, mtime / 1000, mtime / 1000);
  } finally {
    closeSync(fd);
  }
}
