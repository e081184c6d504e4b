import { Header } from 'tar';

const BLOCK = 512;

// Archives are reproducible: the same images give the same bytes.
const EPOCH = new Date(0);

/** A ustar header block for one member. */
export function tarHeader(path: string, kind: 'file' | 'directory', size: number, mode: number): Buffer {
  const header = new Header({
    path,
    mode,
    uid: 0,
    gid: 0,
    size: kind === 'file' ? size : 0,
    mtime: EPOCH,
    type: kind === 'file' ? 'File' : 'Directory',
    uname: '',
    gname: '',
  });
  // Sizes over 8 GiB are written in base-256, which GNU tar, Go and node-tar read.
  header.encode();
  if (!header.block) throw new Error(`tar header for ${path} was not encoded`);
  return header.block;
}

/** Zeros that bring a member of `size` bytes up to a whole block. */
export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** The end-of-archive marker: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
