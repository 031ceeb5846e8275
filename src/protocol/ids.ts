// Ids of API objects (sbx_, exec_, proc_, apr_, key_, req_): time-ordered and unguessable. No zod here,
// so the exec layer (and the CLI's start-up) can make ids without loading the schemas.

/** The prefix of every API object's id: sandbox, exec, process, approval, API key, and request. */
export const idPrefixes = ['sbx', 'exec', 'proc', 'apr', 'key', 'req'] as const;
export type IdPrefix = (typeof idPrefixes)[number];

// Crockford base32 in lower case (no i, l, o, u): unambiguous when read aloud or copied by hand.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ID_BODY = /^[0-9a-hjkmnp-tv-z]{26}$/;

/**
 * A new id such as `sbx_01jz3k…`: 26 characters after the prefix, 48 bits of milliseconds (so ids
 * sort by creation time) then 80 random bits from the platform's CSPRNG (unguessable).
 */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  const random = crypto.getRandomValues(new Uint8Array(10));
  let out = '';
  let t = Math.max(0, Math.floor(now));
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  // 80 bits = 16 base32 digits, 5 bits each.
  let bits = 0;
  let acc = 0;
  for (const byte of random) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  return `${prefix}_${out}`;
}

/** Whether `value` is a well-formed id with this prefix (says nothing about whether the object exists). */
export function isId(prefix: IdPrefix, value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(`${prefix}_`) && ID_BODY.test(value.slice(prefix.length + 1));
}

/** Whether `value` is an exec id (`exec_` + 26 base32 characters, as newId makes them). */
export function isExecId(value: unknown): value is string {
  return isId('exec', value);
}
