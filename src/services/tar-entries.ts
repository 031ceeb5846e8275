// Reading a tar stream (ustar, pax, GNU) entry by entry: hostile names fail, bodies must match
// their headers, and a stream that is not a tar says so.
import type { Readable } from 'node:stream';
import type { Header } from 'tar-stream';
import { CorralError } from '../protocol/errors.ts';
import { joinPath, normalizePath } from '../protocol/paths.ts';
import { hostError } from '../runtime/host-files.ts';

/** An entry's body: it must be read to its end (or skipped) before the next entry comes. */
export type TarBody = AsyncIterable<Buffer>;

/**
 * Calls `visit` for each entry of `input`, in order. A CorralError from `visit` passes through; a
 * failed read of `input` fails as HOST_IO_ERROR, anything else as a stream that is not a valid tar.
 */
export async function forEachTarEntry(input: NodeJS.ReadableStream | Readable, visit: (header: Header, body: TarBody) => Promise<void>): Promise<void> {
  // Loaded on first use: most commands never touch a tar, and every command loads this module.
  const { extract: tarExtract } = await import('tar-stream');
  const extract = tarExtract();
  const source = input as Readable;
  let inputError: Error | undefined;
  const onInputError = (e: Error): void => {
    inputError = e;
    extract.destroy(e);
  };
  source.once('error', onInputError);
  source.pipe(extract as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of extract) await visit(entry.header, entry as unknown as TarBody);
  } catch (e) {
    source.unpipe?.(extract as unknown as NodeJS.WritableStream);
    if (e instanceof CorralError) throw e;
    if (inputError) throw hostError(inputError, 'reading the tar stream');
    throw new CorralError('INVALID_ARGUMENT', `not a valid tar stream: ${(e as Error).message} (a .tar.gz must be gunzipped first, e.g. 'zcat x.tgz | corral import --tar -'; nothing was changed)`, {}, e);
  } finally {
    source.removeListener('error', onInputError);
  }
}

/** The components of a tar entry name below the import root; hostile names fail the import. */
export function tarEntryParts(name: string, root: string): string[] {
  const shown = JSON.stringify(name.replaceAll('\0', '\\0').slice(0, 200));
  if (name.includes('\0')) throw new CorralError('INVALID_PATH', `tar entry ${shown} holds a NUL byte (nothing was changed)`, { entry: name.replaceAll('\0', '\\0').slice(0, 200) });
  if (name.startsWith('/')) throw new CorralError('INVALID_PATH', `tar entry ${shown} is an absolute path; Corral imports only relative names (nothing was changed)`, { entry: name.slice(0, 200) });
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new CorralError('INVALID_PATH', `tar entry ${shown} contains '..', which could escape ${root} (nothing was changed)`, { entry: name.slice(0, 200) });
    parts.push(part);
  }
  if (parts.length) normalizePath(joinPath(root, parts.join('/')));
  return parts;
}

/** An entry's mtime in ms: the pax one (sub-second) when present, else the header's, else `fallback`. */
export function tarMtime(h: Header, fallback: number): number {
  const pax = h.pax as { mtime?: string } | null | undefined;
  const precise = pax?.mtime !== undefined ? Number(pax.mtime) * 1000 : NaN;
  if (Number.isFinite(precise) && precise >= 0) return Math.floor(precise);
  const t = h.mtime?.getTime();
  return t !== undefined && Number.isFinite(t) && t >= 0 ? t : fallback;
}

/** An entry's body, which must be exactly the `size` its header gives. */
export async function readTarBody(body: TarBody, size: number, path: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const chunk of body) {
    got += chunk.length;
    if (got > size) throw new CorralError('INVALID_ARGUMENT', `tar entry ${path} carries more data than its header says (nothing was changed)`, { path });
    chunks.push(chunk);
  }
  if (got !== size) throw new CorralError('INVALID_ARGUMENT', `tar entry ${path} is truncated: ${got} of ${size} bytes (nothing was changed)`, { path });
  // A copy: the chunks may be views of larger read buffers that must not stay alive with the plan.
  return Buffer.concat(chunks, got);
}

export async function skipTarBody(body: TarBody): Promise<void> {
  for await (const chunk of body) void chunk;
}
