import { InvalidArgumentError } from '@berth/core';
import { MAX_COMPONENT_BYTES } from './tar-format';
import { quoteName } from './tar-reader';

/**
 * The components of an entry name, relative to the layer root. `./a//b/` is
 * `['a', 'b']`; the root itself is `[]`. Absolute names and any `..` are
 * refused rather than cleaned up: a layer that contains them was made to
 * escape, and silently stripping them (as tar(1) does) would still write
 * somewhere the author did not say.
 */
export function entryComponents(name: string, what = 'name'): string[] {
  if (name.includes('\0')) throw new InvalidArgumentError(`layer entry ${quoteName(name)}: ${what} contains a NUL byte`);
  if (name.startsWith('/')) {
    throw new InvalidArgumentError(`layer entry ${quoteName(name)}: ${what} is an absolute path; layers hold relative names only`);
  }
  const components = name.split('/').filter((part) => part !== '' && part !== '.');
  if (components.includes('..')) {
    throw new InvalidArgumentError(`layer entry ${quoteName(name)}: ${what} contains "..", which could leave the target directory`);
  }
  for (const part of components) {
    if (Buffer.byteLength(part) > MAX_COMPONENT_BYTES) {
      throw new InvalidArgumentError(
        `layer entry ${quoteName(name)}: path component of ${Buffer.byteLength(part)} bytes is over the ${MAX_COMPONENT_BYTES}-byte limit`,
      );
    }
  }
  return components;
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
