/** The checksums on-disk structures use: CRC-32 (GPT), CRC-32C (ext4 metadata_csum), CRC-16 (ext4 gdt_csum). */

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

const CRC32 = table(0xedb88320);
const CRC32C = table(0x82f63b78);

function run(t: Uint32Array, crc: number, data: Uint8Array): number {
  let c = crc >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** Standard CRC-32 (zlib, GPT). */
export function crc32(data: Uint8Array): number {
  return (run(CRC32, 0xffffffff, data) ^ 0xffffffff) >>> 0;
}

/**
 * Raw CRC-32C update without pre/post inversion, as ext4 chains it: ext4's crc32c(seed, buf)
 * is this function; the filesystem seeds it with ~0 and stores the result un-inverted.
 */
export function crc32cUpdate(seed: number, data: Uint8Array): number {
  return run(CRC32C, seed, data);
}

let CRC16: Uint16Array | undefined;

/** CRC-16 (poly 0x8005 reflected = 0xA001), as ext4's gdt_csum feature uses it. */
export function crc16Update(seed: number, data: Uint8Array): number {
  if (!CRC16) {
    CRC16 = new Uint16Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
      CRC16[i] = c;
    }
  }
  let c = seed & 0xffff;
  for (let i = 0; i < data.length; i++) c = (CRC16[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)) & 0xffff;
  return c;
}
