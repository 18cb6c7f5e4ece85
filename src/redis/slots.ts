/**
 * Redis Cluster's key slots (docs/protocol.md, "Keys on a Redis Cluster"):
 * a key's slot is CRC16 of its hash tag (the text between its first `{` and
 * the first `}` after it, when not empty) or else of the whole key, mod 16384.
 * Keys that one command, MULTI or script touches together must share a slot.
 */

const SLOTS = 16384;

// CRC16-CCITT (XMODEM), the one Redis Cluster uses: polynomial 0x1021, initial value 0.
const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

/** The part of a key that decides its slot: its hash tag when it has one, else the whole key. */
export function hashedPart(key: string | Buffer): Buffer {
  const bytes = typeof key === "string" ? Buffer.from(key) : key;
  const open = bytes.indexOf(0x7b); // {
  if (open === -1) return bytes;
  const close = bytes.indexOf(0x7d, open + 1); // }
  if (close === -1 || close === open + 1) return bytes;
  return bytes.subarray(open + 1, close);
}

/** The cluster slot of a key (0-16383). */
export function slotOf(key: string | Buffer): number {
  return crc16(hashedPart(key)) % SLOTS;
}

/**
 * A key named after `key`, in the same slot: `key:suffix` when `key` has a
 * hash tag (it inherits it), else `{key}:suffix` (the whole of `key` becomes
 * the tag). On one node this is only a name.
 */
export function sameSlotKey(key: string, suffix: string): string {
  return hashedPart(key).length === Buffer.byteLength(key) ? `{${key}}:${suffix}` : `${key}:${suffix}`;
}
