import { posix } from 'path';
import type { Readable } from 'stream';
import { Parser, type ReadEntry } from 'tar';
import { InvalidArgumentError } from '@berth/core';

/** One member of a tar archive, its data not yet read. */
export interface TarMember {
  /** The raw name in the archive. */
  readonly rawPath: string;
  /** The name relative to the archive root (`./a//b/` → `a/b`); '' for the root itself. */
  readonly path: string;
  readonly kind: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  /** Bytes of data the header announces. */
  readonly size: number;
  /** For links: the target as an archive path (symlinks resolved against the member's directory). */
  readonly linkTarget?: string;
  /** The data; must be read to the end or `skip`ped before the next member comes. */
  readonly body: AsyncIterable<Buffer>;
  skip(): void;
}

function quote(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}

/**
 * A member name made relative to the archive root. Refuses absolute names and
 * any `..` component: nothing in an image archive needs them, and a name that
 * could leave the root is an attack, not a layout.
 */
export function archivePath(raw: string): string {
  if (raw.includes('\0')) throw new InvalidArgumentError(`archive entry ${quote(raw)} contains a NUL byte`);
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw) || raw.startsWith('\\')) {
    throw new InvalidArgumentError(`archive entry ${quote(raw)} is an absolute path; image archives hold relative names only`);
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new InvalidArgumentError(`archive entry ${quote(raw)} contains "..": refusing a name that can leave the archive root`);
  }
  return parts.join('/');
}

function linkTargetPath(member: string, linkpath: string, kind: 'symlink' | 'hardlink'): string {
  if (linkpath.startsWith('/')) {
    throw new InvalidArgumentError(`archive ${kind} ${quote(member)} points at the absolute path ${quote(linkpath)}`);
  }
  // Symlinks are relative to the link's directory, hard links to the archive root.
  const joined = kind === 'symlink' ? posix.join(posix.dirname(member), linkpath) : posix.normalize(linkpath);
  if (joined === '..' || joined.startsWith('../')) {
    throw new InvalidArgumentError(`archive ${kind} ${quote(member)} points outside the archive (${quote(linkpath)})`);
  }
  return archivePath(joined);
}

function kindOf(entry: ReadEntry): TarMember['kind'] {
  switch (entry.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'directory';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    default:
      return 'other';
  }
}

function describeParseError(err: Error): InvalidArgumentError {
  const code = (err as { code?: unknown }).code;
  const message = err.message.replace(/^TAR_[A-Z_]+: /, '');
  if (code === 'TAR_BAD_ARCHIVE' && /truncated/i.test(message)) {
    return new InvalidArgumentError(`archive is truncated: ${message}`, { cause: err });
  }
  return new InvalidArgumentError(`not a valid tar archive: ${message}`, { cause: err });
}

/**
 * The members of a tar stream, one at a time. node-tar does the parsing (and
 * ungzips a compressed archive); this adds the path checks and turns its
 * events into something a loop with `await`s in it can consume: the parser
 * holds the next member back until the current one's data has been read, so
 * memory stays at a chunk or two whatever the archive holds.
 *
 * A stream that ends before the end-of-archive blocks is refused as truncated.
 * When the loop stops early (an error in it, or a `break`), `input` is destroyed.
 */
export async function* readTar(input: Readable): AsyncGenerator<TarMember> {
  const parser = new Parser({ strict: true });
  const waiting: ReadEntry[] = [];
  let current: ReadEntry | undefined;
  let failure: Error | undefined;
  let ended = false;
  let sawEndOfArchive = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // Settles when reading fails, so a reader awaiting member data never outwaits the failure:
  // a Minipass entry destroyed before its iterator's next() is called never answers that call.
  let rejectFailed!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => undefined);
  const fail = (err: Error) => {
    failure ??= err;
    rejectFailed(failure);
    current?.destroy();
    notify();
  };
  async function* bodyOf(entry: ReadEntry): AsyncGenerator<Buffer> {
    const chunks = entry[Symbol.asyncIterator]();
    for (;;) {
      if (failure) throw failure;
      let step: IteratorResult<Buffer>;
      try {
        step = await Promise.race([chunks.next(), failed]);
      } catch (err) {
        // Minipass reports our destroy() as "stream destroyed"; the cause is `failure`.
        throw failure ?? err;
      }
      if (step.done) break;
      yield step.value;
    }
    if (failure) throw failure;
  }

  parser.on('entry', (entry: ReadEntry) => {
    waiting.push(entry);
    notify();
  });
  parser.on('nullBlock', () => (sawEndOfArchive = true));
  parser.on('eof', () => (sawEndOfArchive = true));
  parser.on('error', (err: Error) => fail(describeParseError(err)));
  parser.on('end', () => {
    ended = true;
    notify();
  });
  const onInputError = (err: Error) => fail(err);
  let inputEnded = false;
  const onInputEnd = () => (inputEnded = true);
  // A stream destroyed without an error closes without ending; pipe() would leave the parser waiting.
  const onInputClose = () => {
    if (!inputEnded) fail(new InvalidArgumentError('archive is truncated: the input stream closed before it ended'));
  };
  input.on('error', onInputError);
  input.on('end', onInputEnd);
  input.on('close', onInputClose);
  input.pipe(parser as unknown as NodeJS.WritableStream);

  let completed = false;
  try {
    for (;;) {
      if (failure) throw failure;
      const entry = waiting.shift();
      if (!entry) {
        if (ended) break;
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      current = entry;
      const path = archivePath(entry.path);
      const kind = kindOf(entry);
      let linkTarget: string | undefined;
      if (kind === 'symlink' || kind === 'hardlink') linkTarget = linkTargetPath(path, entry.linkpath ?? '', kind);
      yield {
        rawPath: entry.path,
        path,
        kind,
        size: entry.size,
        linkTarget,
        body: bodyOf(entry),
        skip: () => {
          entry.resume();
        },
      };
      // Whatever the consumer left unread is drained so the parser moves on.
      if (!entry.emittedEnd) entry.resume();
      current = undefined;
    }
    if (failure) throw failure;
    if (!sawEndOfArchive) {
      throw new InvalidArgumentError('archive is truncated: the stream ended before the end-of-archive marker');
    }
    completed = true;
  } finally {
    input.off('error', onInputError);
    input.off('end', onInputEnd);
    input.off('close', onInputClose);
    // An error the stream raises after we are done with it must not crash the process.
    input.on('error', () => undefined);
    if (!completed) {
      input.unpipe(parser as unknown as NodeJS.WritableStream);
      parser.abort(new Error('archive reading stopped'));
      input.destroy();
    }
  }
}
