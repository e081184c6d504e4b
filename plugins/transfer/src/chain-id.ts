import { createHash } from 'crypto';
import { InvalidArgumentError } from '@berth/core';

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * The chain ID of a layer on top of `parent` (OCI image spec):
 * chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)).
 * Snapshots of unpacked layers are named by it.
 */
export function chainID(parent: string, diffID: string): string {
  if (parent === '') return diffID;
  return `sha256:${createHash('sha256').update(`${parent} ${diffID}`).digest('hex')}`;
}

/** The chain ID of every prefix of `diffIDs`: element i names the snapshot of layers 0..i. */
export function chainIDs(diffIDs: readonly string[]): string[] {
  const out: string[] = [];
  let parent = '';
  for (const diffID of diffIDs) {
    if (!DIGEST.test(diffID)) throw new InvalidArgumentError(`diffID ${JSON.stringify(diffID)} is not a sha256 digest`);
    parent = chainID(parent, diffID);
    out.push(parent);
  }
  return out;
}
