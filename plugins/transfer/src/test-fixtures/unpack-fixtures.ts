import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import {
  type ContentInfo,
  type ContentStore,
  type Descriptor,
  type Labels,
  NotFoundError,
  type Snapshotter,
  type SnapshotService,
  updatedLabels,
} from '@berth/core';
import { lgetxattr, llistxattr, mountAll, unmountAll } from '@berth/sys';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** Suites that mount or chown: they skip only when not root. */
export const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Blobs in memory, with labels: the part of a ContentStore unpack uses
 * (read, info, update), plus `add`.
 */
export class MemoryBlobs {
  readonly blobs = new Map<string, { data: Buffer; labels: Labels; createdAt: Date }>();
  reads = 0;

  add(mediaType: string, data: Buffer, annotations?: Record<string, string>): Descriptor {
    const digest = sha256(data);
    this.blobs.set(digest, { data, labels: {}, createdAt: new Date() });
    return { mediaType, digest, size: data.length, ...(annotations ? { annotations } : {}) };
  }

  json(mediaType: string, doc: unknown): Descriptor {
    return this.add(mediaType, Buffer.from(JSON.stringify(doc)));
  }

  private get(digest: string) {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    return blob;
  }

  asStore(): ContentStore {
    const self = this;
    const info = (digest: string): ContentInfo => {
      const blob = self.get(digest);
      return { digest, size: blob.data.length, labels: { ...blob.labels }, createdAt: blob.createdAt, updatedAt: blob.createdAt };
    };
    const partial: Pick<ContentStore, 'read' | 'info' | 'update'> = {
      async read(digest: string) {
        const { data } = self.get(digest);
        self.reads++;
        const chunks: Buffer[] = [];
        for (let i = 0; i < data.length; i += 16 * 1024) chunks.push(data.subarray(i, i + 16 * 1024));
        return Readable.from(chunks, { objectMode: false });
      },
      async info(digest: string) {
        return info(digest);
      },
      async update(next: { digest: string; labels: Labels }, fieldpaths?: string[]) {
        const blob = self.get(next.digest);
        blob.labels = updatedLabels(blob.labels, next.labels, fieldpaths);
        return info(next.digest);
      },
    };
    return partial as ContentStore;
  }
}

export const MediaTypes = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export interface FixtureImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  diffIDs: string[];
}

/** Stores an image of `tars` (gzipped) whose config claims `diffIDs` (default: the real ones). */
export function storeImage(blobs: MemoryBlobs, tars: Buffer[], options: { diffIDs?: string[]; gzip?: boolean } = {}): FixtureImage {
  const layers = tars.map((tar) =>
    options.gzip === false ? blobs.add(MediaTypes.layer, tar) : blobs.add(MediaTypes.layerGzip, gzipSync(tar)),
  );
  const diffIDs = options.diffIDs ?? tars.map((tar) => sha256(tar));
  const config = blobs.json(MediaTypes.config, {
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: diffIDs },
  });
  const manifest = blobs.json(MediaTypes.manifest, {
    schemaVersion: 2,
    mediaType: MediaTypes.manifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  });
  return { manifest, config, layers, diffIDs };
}

/**
 * A tar of `dir`'s contents made by GNU tar (owners, modes, hard links,
 * xattrs and `.wh.` files as they are on disk), in name order.
 */
export function tarOfDir(dir: string): Buffer {
  const out = `${dir}.tar`;
  execFileSync('tar', ['--sort=name', '--numeric-owner', '--xattrs', '--xattrs-include=*', '--format=pax', '-C', dir, '-cf', out, '.']);
  const data = fs.readFileSync(out);
  fs.rmSync(out);
  return data;
}

export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * The SnapshotService contract over raw snapshotters, without namespaces or
 * leases: enough for unpack tests (the real one is the metadata service).
 */
export function rawSnapshotService(backends: Record<string, Snapshotter>, defaultName = Object.keys(backends)[0]): SnapshotService {
  return {
    defaultName,
    names: () => Object.keys(backends),
    forNamespace(_namespace: string, snapshotter?: string) {
      const backend = backends[snapshotter || defaultName];
      if (!backend) throw new NotFoundError(`snapshotter ${JSON.stringify(snapshotter)}: not loaded`);
      return backend;
    },
  };
}

/** Runs `fn` with a read-only view of `parent` mounted on a temp dir. */
export async function withMountedView<T>(snapshots: Snapshotter, parent: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const key = `check-${Math.random().toString(36).slice(2)}`;
  const mounts = await snapshots.view(key, parent);
  const dir = makeTempDir('berth-unpack-view-');
  try {
    await mountAll(mounts, dir);
    try {
      return await fn(dir);
    } finally {
      await unmountAll(dir);
    }
  } finally {
    fs.rmdirSync(dir);
    await snapshots.remove(key);
  }
}

/** What a tree holds, comparable with toEqual: path -> kind, mode, owner, content/target, link group (and, if asked, mtime and xattrs). */
export function describeTree(root: string, withTimesAndXattrs = false): Record<string, string> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string>();
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    for (const name of fs.readdirSync(full).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, childRel));
      let owner = `${st.uid}:${st.gid}`;
      if (withTimesAndXattrs) {
        if (!st.isSymbolicLink()) owner += ` mtime=${Math.floor(st.mtimeMs / 1000)}`;
        for (const name of llistxattr(path.join(root, childRel)).sort()) {
          if (!name.startsWith('trusted.overlay.')) owner += ` ${name}=${lgetxattr(path.join(root, childRel), name).toString()}`;
        }
      }
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[childRel] = `dir ${mode} ${owner}`;
        walk(childRel);
      } else if (st.isSymbolicLink()) {
        out[childRel] = `symlink -> ${fs.readlinkSync(path.join(root, childRel))} ${owner}`;
      } else if (st.isFile()) {
        let link = '';
        if (st.nlink > 1) {
          const first = inodes.get(st.ino);
          if (first) link = ` =${first}`;
          else inodes.set(st.ino, childRel);
        }
        out[childRel] = `file ${mode} ${owner} ${fs.readFileSync(path.join(root, childRel), 'utf8')}${link}`;
      } else {
        out[childRel] = `other ${mode} ${owner}`;
      }
    }
  };
  walk('');
  return out;
}
