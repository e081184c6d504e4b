import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { ContentStore } from '@berth/core';
import { MemoryContentStore } from './memory-content-store';
import { putBlob, sha256 } from './images';

export interface TestStore {
  store: ContentStore;
  /** The directory the store keeps its files in, if it has one. */
  root?: string;
  cleanup(): void;
}

export type StoreKind = 'memory' | 'local';

type LocalStoreConstructor = new (root: string) => ContentStore;

/**
 * plugins/content-local's LocalContentStore, when it loads and passes a smoke
 * test (it is being written alongside this package); undefined otherwise.
 */
export async function localContentStore(): Promise<LocalStoreConstructor | undefined> {
  let ctor: LocalStoreConstructor | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ctor = (require('@berth/content-local') as { LocalContentStore?: LocalStoreConstructor }).LocalContentStore;
  } catch {
    return undefined;
  }
  if (typeof ctor !== 'function') return undefined;
  const root = mkdtempSync(join(tmpdir(), 'berth-archive-smoke-'));
  try {
    const store = new ctor(root);
    const data = Buffer.from('smoke');
    await putBlob(store, data, 'application/octet-stream');
    const chunks: Buffer[] = [];
    for await (const c of await store.read(sha256(data))) chunks.push(c as Buffer);
    return Buffer.concat(chunks).equals(data) ? ctor : undefined;
  } catch {
    return undefined;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export function memoryStore(): TestStore {
  return { store: new MemoryContentStore(), cleanup: () => undefined };
}

export function localStore(ctor: LocalStoreConstructor, parent: string): TestStore {
  const root = join(parent, 'store');
  return { store: new ctor(root), root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
