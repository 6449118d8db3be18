/**
 * Just enough of the ELF format (64-bit, little-endian: x86-64 and arm64 Linux) for the rescue
 * kit: which shared libraries a program needs and which loader runs it (so Node can be copied with
 * what it links against, without `ldd`), a kernel module's dependencies from its .modinfo section
 * (without `depmod`), and dropping what only debuggers read (without `strip`).
 */
import { LifeboatError } from './errors.js';

export interface ElfInfo {
  /** The program interpreter (/lib64/ld-linux-x86-64.so.2), for a dynamically linked program. */
  readonly interpreter?: string;
  /** DT_NEEDED: the shared libraries it links against, by soname. */
  readonly needed: readonly string[];
  /** The end of the last loaded segment: bytes after it (symbols, debug info, section headers) are never loaded. */
  readonly loadedEnd: number;
  /** Sections by name (offset and size in the file); empty without section headers. */
  readonly sections: ReadonlyMap<string, { readonly offset: number; readonly size: number }>;
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1;
const DT_STRTAB = 5;

function cstr(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.toString('utf8', at, end < 0 ? b.length : end);
}

/** Reads the headers of a 64-bit little-endian ELF file held in `b`. */
export function readElf(b: Buffer, what = 'the file'): ElfInfo {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) throw new LifeboatError('invalid-argument', `${what} is not a 64-bit little-endian ELF file.`);
  const num = (o: number) => Number(b.readBigUInt64LE(o));
  const phoff = num(32);
  const shoff = num(40);
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  const shentsize = b.readUInt16LE(58);
  const shnum = b.readUInt16LE(60);
  const shstrndx = b.readUInt16LE(62);
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let interpreter: string | undefined;
  let dynamic: { offset: number; size: number } | undefined;
  let loadedEnd = 0;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 56 > b.length) break;
    const type = b.readUInt32LE(p);
    const offset = num(p + 8);
    const vaddr = num(p + 16);
    const filesz = num(p + 32);
    if (type === PT_LOAD) {
      loads.push({ vaddr, offset, filesz });
      loadedEnd = Math.max(loadedEnd, offset + filesz);
    } else if (type === PT_INTERP) interpreter = cstr(b, offset);
    else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
  }
  const needed: string[] = [];
  if (dynamic) {
    const names: number[] = [];
    let strtab: number | undefined;
    for (let o = dynamic.offset; o + 16 <= dynamic.offset + dynamic.size; o += 16) {
      const tag = num(o);
      if (tag === 0) break;
      if (tag === DT_NEEDED) names.push(num(o + 8));
      else if (tag === DT_STRTAB) strtab = num(o + 8);
    }
    const seg = strtab === undefined ? undefined : loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
    if (seg && strtab !== undefined) for (const n of names) needed.push(cstr(b, seg.offset + (strtab - seg.vaddr) + n));
  }
  const sections = new Map<string, { offset: number; size: number }>();
  if (shoff > 0 && shnum > 0 && shoff + shnum * shentsize <= b.length && shstrndx < shnum) {
    const sh = (i: number) => shoff + i * shentsize;
    const strOff = num(sh(shstrndx) + 24);
    for (let i = 0; i < shnum; i++) {
      const name = cstr(b, strOff + b.readUInt32LE(sh(i)));
      sections.set(name, { offset: num(sh(i) + 24), size: num(sh(i) + 32) });
    }
  }
  return { ...(interpreter !== undefined ? { interpreter } : {}), needed, loadedEnd, sections };
}

/** A kernel module's `depends=` (module names, '-' and '_' as the module spells them) from its .modinfo section. */
export function moduleDependencies(ko: Buffer, what = 'the module'): string[] {
  const s = readElf(ko, what).sections.get('.modinfo');
  if (!s) return [];
  for (const field of ko.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
    if (field.startsWith('depends=')) return field.slice('depends='.length).split(',').filter((x) => x !== '');
  }
  return [];
}

/**
 * An executable without what only debuggers and linkers read: the bytes after its last loaded
 * segment (symbol tables, debug sections, section headers) are cut and the section header table
 * is dropped from the ELF header. The program loads and runs exactly as before.
 */
export function stripElf(b: Buffer, what = 'the program'): Buffer {
  const { loadedEnd } = readElf(b, what);
  const phoff = Number(b.readBigUInt64LE(32));
  const phend = phoff + b.readUInt16LE(54) * b.readUInt16LE(56);
  if (loadedEnd >= b.length || phend > loadedEnd) return b;
  const out = Buffer.from(b.subarray(0, loadedEnd));
  out.writeBigUInt64LE(0n, 40); // e_shoff
  out.writeUInt16LE(0, 58); // e_shentsize
  out.writeUInt16LE(0, 60); // e_shnum
  out.writeUInt16LE(0, 62); // e_shstrndx
  return out;
}
