// Planning the import of a host directory: one walk over its metadata (file contents are read
// later, at build time). Symlinks are recorded as links, never followed; other special files are skipped.
import { lstatSync, readdirSync, statSync, type Stats } from 'node:fs';
import { CorralError } from '../protocol/errors.ts';
import { MAX_PATH_BYTES, joinPath } from '../protocol/paths.ts';
import { errnoCode, hostError, readHostFile, readLinkText, type HostIdentity } from '../runtime/host-files.ts';
import { planDir, pointsOutside, writeAheadBatcher, type PlanDir, type PlanFile } from './import-plan.ts';
import { checkFileSize } from '../runtime/transfer-limits.ts';
import type { OutsideLink, SkippedEntry } from './transfer-service.ts';
import type { TransferTally } from './transfer-tally.ts';

export interface HostScan {
  root: PlanDir;
  /** Files and symlinks found (directories not counted). */
  entries: number;
  skipped: SkippedEntry[];
  outside: OutsideLink[];
}

const encoder = new TextEncoder();

/** Plans the import of the host directory `source` (an absolute path) at `vaultPath`. */
export function scanHostDir(source: string, vaultPath: string, maxFileSize: number | null): HostScan {
  let st: Stats;
  try {
    st = statSync(source);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new CorralError('PATH_NOT_FOUND', `no such host directory: ${source}`, { hostPath: source });
    throw hostError(e, source);
  }
  if (!st.isDirectory()) throw new CorralError('NOT_A_DIRECTORY', `${source} is not a directory: import takes a directory (to add one file, use 'corral write PATH < FILE')`, { hostPath: source });
  const scan: HostScan = { root: planDir(st.mode & 0o777, Math.floor(st.mtimeMs)), entries: 0, skipped: [], outside: [] };
  scanLevel(source, vaultPath, 0, scan.root, maxFileSize, scan);
  // The source itself may be a symlink the caller named; what it leads to must not change meanwhile.
  checkSameDir(source, st, statSync(source, { throwIfNoEntry: false }));
  return scan;
}

/**
 * Fails unless the directory at `host` is still the one listed. A directory swapped for a symlink
 * while it was listed would have planned files from elsewhere (their own dev/ino then match too).
 */
function checkSameDir(host: string, was: HostIdentity, now: Stats | undefined): void {
  if (now?.isDirectory() && now.dev === was.dev && now.ino === was.ino) return;
  throw new CorralError('UNSAFE_HOST_PATH', `${host} was replaced while importing (a directory swapped for a symlink would import files from elsewhere); nothing was changed: retry once the source stops changing`, { hostPath: host });
}

/** Reads one host directory level into `dir`. */
function scanLevel(host: string, vaultDir: string, depth: number, dir: PlanDir, maxFileSize: number | null, scan: HostScan): void {
  let names: string[];
  try {
    names = readdirSync(host);
  } catch (e) {
    throw hostError(e, host);
  }
  for (const name of names) {
    const hostPath = host + '/' + name;
    const path = joinPath(vaultDir, name);
    checkVaultPathLength(path);
    let st: Stats | undefined;
    try {
      st = lstatSync(hostPath, { throwIfNoEntry: false });
    } catch (e) {
      throw hostError(e, hostPath);
    }
    if (!st) {
      // Names that are not UTF-8 decode lossily and then cannot be found again.
      scan.skipped.push({ path, reason: name.includes('\uFFFD') ? 'name is not valid UTF-8' : 'vanished during the import' });
      continue;
    }
    const mtime = Math.floor(st.mtimeMs);
    if (st.isDirectory()) {
      const child = planDir(st.mode & 0o777, mtime);
      dir.children.set(name, child);
      scanLevel(hostPath, path, depth + 1, child, maxFileSize, scan);
      checkSameDir(hostPath, st, lstatSync(hostPath, { throwIfNoEntry: false }));
    } else if (st.isFile()) {
      checkFileSize(path, st.size, maxFileSize);
      dir.children.set(name, { kind: 'file', mode: st.mode & 0o777, mtime, size: st.size, host: hostPath, scanned: { dev: st.dev, ino: st.ino } });
      scan.entries++;
    } else if (st.isSymbolicLink()) {
      let target: string | undefined;
      try {
        target = readLinkText(hostPath);
      } catch (e) {
        throw hostError(e, hostPath);
      }
      if (target === undefined) {
        scan.skipped.push({ path, reason: 'link target is not valid UTF-8' });
        continue;
      }
      if (pointsOutside(depth, target)) scan.outside.push({ path, target });
      dir.children.set(name, { kind: 'symlink', mtime, target });
      scan.entries++;
    } else {
      const kind = st.isSocket() ? 'socket' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'special file';
      scan.skipped.push({ path, reason: `${kind} (not a file, directory or symlink)` });
    }
  }
}

function checkVaultPathLength(path: string): void {
  if (path.length * 3 > MAX_PATH_BYTES && encoder.encode(path).length > MAX_PATH_BYTES)
    throw new CorralError('INVALID_PATH', `${path.slice(0, 80)}… is longer than ${MAX_PATH_BYTES} bytes inside the vault (nothing was changed)`, { path: path.slice(0, 200) });
}

export interface ReadScannedOptions {
  maxFileSize: number | null;
  /** Called with the bytes read so far; throws when they can no longer fit the vault. */
  checkBytes: (bytes: number) => void;
  /** Writes held file data as blobs and sets each file's `hash` in place of its `data`. */
  writeAhead: (files: PlanFile[]) => void;
  /** Counts files and links, for progress. */
  tally: TransferTally;
}

/**
 * Reads the files of a scanned host directory, before the commit: the data is written ahead in
 * batches, each in a short transaction of its own, so the long reading holds no write lock. The last
 * batch stays in the plan for the commit. Each file must be the very one the scan saw.
 */
export function readScannedFiles(root: PlanDir, vaultPath: string, o: ReadScannedOptions): void {
  const writeAhead = writeAheadBatcher(o.writeAhead);
  let total = 0;
  const walk = (dir: PlanDir, path: string): void => {
    for (const [name, node] of dir.children) {
      const at = joinPath(path, name);
      if (node.kind === 'dir') walk(node, at);
      else if (node.kind === 'symlink') o.tally.symlink();
      else if (node.host !== undefined && node.hash === undefined && node.data === undefined) {
        const data = readHostFile(node.host, at, node.size, node.scanned, o.maxFileSize);
        checkFileSize(at, data.length, o.maxFileSize);
        total += data.length;
        o.checkBytes(total);
        node.data = data;
        node.size = data.length;
        o.tally.file(data.length);
        writeAhead(node);
      }
    }
  };
  walk(root, vaultPath);
}
