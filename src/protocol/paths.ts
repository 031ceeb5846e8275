// Path and name rules shared by every layer. Paths inside a vault are absolute, '/'-separated,
// without '.', '..' or empty components; '/' is the root.
import { CorralError } from './errors.ts';

export const MAX_COMPONENT_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
const encoder = new TextEncoder();

/** UTF-8 length, skipping the encoding when the string is short enough to be under `limit` anyway. */
function overLimit(text: string, limit: number): boolean {
  return text.length * 3 > limit && encoder.encode(text).length > limit;
}

/** Normalises a vault path; rejects NUL, over-long components and '..' that would leave the root. */
export function normalizePath(input: unknown): string {
  if (typeof input !== 'string') throw new CorralError('INVALID_PATH', `a path must be a string, got ${typeof input}`);
  if (input.includes('\0')) throw new CorralError('INVALID_PATH', 'path contains a NUL byte', { path: input.replaceAll('\0', '\\0') });
  if (overLimit(input, MAX_PATH_BYTES))
    throw new CorralError('INVALID_PATH', `path is longer than ${MAX_PATH_BYTES} bytes`, { bytes: encoder.encode(input).length });
  const out: string[] = [];
  for (const part of input.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new CorralError('INVALID_PATH', `path escapes the vault root: ${input}`, { path: input });
      out.pop();
      continue;
    }
    if (overLimit(part, MAX_COMPONENT_BYTES))
      throw new CorralError('INVALID_PATH', `path component is longer than ${MAX_COMPONENT_BYTES} bytes`, { component: part.slice(0, 40) + '…' });
    out.push(part);
  }
  return '/' + out.join('/');
}

export function splitPath(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** True when `path` is `ancestor` or lies below it. */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === '/' || path === ancestor || path.startsWith(ancestor + '/');
}

const VAULT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;

export function validateVaultName(name: unknown): string {
  if (typeof name !== 'string' || !VAULT_NAME.test(name))
    throw new CorralError(
      'INVALID_NAME',
      `invalid vault name ${JSON.stringify(typeof name === 'string' ? name.slice(0, 80) : name)}: use 1-64 of A-Z a-z 0-9 _ -, not starting with '-'`,
      { name: typeof name === 'string' ? name.slice(0, 80) : String(name) },
    );
  return name;
}

const CHECKPOINT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;

export function validateCheckpointName(name: unknown): string {
  if (typeof name !== 'string' || !CHECKPOINT_NAME.test(name) || name === 'HEAD')
    throw new CorralError(
      'INVALID_NAME',
      `invalid checkpoint name ${JSON.stringify(String(name).slice(0, 80))}: use 1-128 of A-Z a-z 0-9 _ - . :, not starting with '-' or '.', and not HEAD`,
    );
  return name;
}

const TAG_NAME = /^[^\0\s,/][^\0\s,]{0,63}$/u;

export function validateTag(tag: unknown): string {
  if (typeof tag !== 'string' || !TAG_NAME.test(tag))
    throw new CorralError('INVALID_NAME', `invalid tag ${JSON.stringify(String(tag).slice(0, 80))}: 1-64 characters, no spaces, commas, NUL, not starting with '/'`);
  return tag;
}

const META_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;

export function validateMetaKey(key: unknown): string {
  if (typeof key !== 'string' || !META_KEY.test(key))
    throw new CorralError('INVALID_NAME', `invalid metadata key ${JSON.stringify(String(key).slice(0, 80))}: 1-128 of A-Z a-z 0-9 _ - . :`);
  return key;
}
