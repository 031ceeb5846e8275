// Bytes and text for the SDK with web-standard globals only (no Buffer): base64 both ways (the
// platform's own codec when it has one) and UTF-8.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type WithBase64 = Uint8Array & { toBase64?: () => string };
type Base64Ctor = typeof Uint8Array & { fromBase64?: (text: string) => Uint8Array };

export function base64Encode(bytes: Uint8Array): string {
  const own = (bytes as WithBase64).toBase64;
  if (typeof own === 'function') return own.call(bytes);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function base64Decode(text: string): Uint8Array {
  const own = (Uint8Array as Base64Ctor).fromBase64;
  if (typeof own === 'function') return own(text);
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** A string as UTF-8 bytes; bytes as they are. */
export function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? encoder.encode(data) : data;
}

/** UTF-8 bytes as text (invalid sequences become U+FFFD). */
export function utf8Text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
