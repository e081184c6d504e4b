import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { cachedFixtureDir } from './fixture-cache';
import { run } from './process';

/**
 * Fixture images built without a network from Debian's busybox-static, as an
 * OCI layout, and a registry storage directory seeded with them by skopeo.
 * Both are built once per machine and cached (see fixture-cache.ts).
 *
 * Images in the seeded registry (every registry from registry.ts starts with them):
 * - `busybox:latest`: OCI manifest, linux/amd64, 3 gzip layers (busybox binary,
 *   applet symlinks, /etc files).
 * - `multi:latest`: OCI index of linux/amd64 (the busybox manifest) and a tiny
 *   fake linux/arm64 image (one small layer, not runnable).
 * - `busybox-docker:latest`: the busybox image converted by skopeo to Docker
 *   schema 2 media types (its manifest and config digests differ; layers are the same bytes).
 */

export const OCI = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface FixtureDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface FixtureManifest {
  manifest: FixtureDescriptor;
  config: FixtureDescriptor;
  layers: FixtureDescriptor[];
  /** sha256 of each uncompressed layer tar, as in the config's rootfs.diff_ids. */
  diffIds: string[];
}

export interface FixtureImages {
  /** OCI image layout (skopeo `oci:<dir>:busybox`, `oci:<dir>:multi`). */
  layoutDir: string;
  /** Registry storage (filesystem driver rootdirectory) holding the repos above. */
  registryStorage: string;
  busybox: FixtureManifest;
  multi: { index: FixtureDescriptor; amd64: FixtureManifest; arm64: FixtureManifest };
  /** Digests of the skopeo-converted Docker schema 2 copy of busybox. */
  busyboxDocker: { manifest: FixtureDescriptor; config: FixtureDescriptor; layers: FixtureDescriptor[] };
}

const busyboxPath = '/bin/busybox';
const applets = ['sh', 'ls', 'cat', 'echo', 'true', 'false', 'env', 'sleep', 'id', 'mkdir', 'rm', 'touch', 'wc', 'head'];

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A deterministic tar (fixed owner, mtime and order) of `names` under `dir`. */
async function tarOf(dir: string, names: string[]): Promise<Buffer> {
  const out = path.join(dir, '..', `${path.basename(dir)}.tar`);
  const r = await run('tar', [
    '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--format=gnu',
    '-C', dir, '-cf', out, ...names,
  ]);
  if (r.code !== 0) throw new Error(`tar failed: ${r.stderr}`);
  const data = fs.readFileSync(out);
  fs.rmSync(out);
  return data;
}

class LayoutWriter {
  constructor(readonly dir: string) {
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }

  blob(mediaType: string, data: Buffer): FixtureDescriptor {
    const digest = sha256(data);
    fs.writeFileSync(path.join(this.dir, 'blobs', 'sha256', digest.slice(7)), data);
    return { mediaType, digest, size: data.length };
  }

  json(mediaType: string, doc: unknown): FixtureDescriptor {
    return this.blob(mediaType, Buffer.from(JSON.stringify(doc)));
  }

  /** Writes a manifest with `layerTars` gzipped as its layers. */
  image(arch: string, layerTars: Buffer[], cmd: string[]): FixtureManifest {
    const layers = layerTars.map((tar) => this.blob(OCI.layerGzip, zlib.gzipSync(tar, { level: 6 })));
    const diffIds = layerTars.map((tar) => sha256(tar));
    const config = this.json(OCI.config, {
      created: '1970-01-01T00:00:00Z',
      architecture: arch,
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: cmd },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layerTars.map((_, i) => ({ created: '1970-01-01T00:00:00Z', created_by: `berth fixture layer ${i}` })),
    });
    const manifest = this.json(OCI.manifest, {
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    });
    return { manifest, config, layers, diffIds };
  }

  writeIndex(refs: Record<string, FixtureDescriptor>): void {
    const manifests = Object.entries(refs).map(([name, d]) => ({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      annotations: { 'org.opencontainers.image.ref.name': name },
    }));
    fs.writeFileSync(path.join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  }
}

async function buildLayout(dir: string): Promise<Omit<FixtureImages, 'layoutDir' | 'registryStorage' | 'busyboxDocker'>> {
  const stage = path.join(dir, 'stage');
  const layout = new LayoutWriter(path.join(dir, 'layout'));

  const l1 = path.join(stage, 'l1');
  fs.mkdirSync(path.join(l1, 'bin'), { recursive: true });
  fs.copyFileSync(busyboxPath, path.join(l1, 'bin', 'busybox'));
  fs.chmodSync(path.join(l1, 'bin', 'busybox'), 0o755);

  const l2 = path.join(stage, 'l2');
  fs.mkdirSync(path.join(l2, 'bin'), { recursive: true });
  for (const a of applets) fs.symlinkSync('busybox', path.join(l2, 'bin', a));

  const l3 = path.join(stage, 'l3');
  fs.mkdirSync(path.join(l3, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(l3, 'tmp'), { recursive: true });
  fs.chmodSync(path.join(l3, 'tmp'), 0o1777);
  fs.writeFileSync(path.join(l3, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(l3, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  fs.writeFileSync(path.join(l3, 'etc', 'berth-fixture'), 'hello from a berth fixture image\n');

  const busybox = layout.image('amd64', [await tarOf(l1, ['bin']), await tarOf(l2, ['bin']), await tarOf(l3, ['etc', 'tmp'])], ['sh']);

  const fake = path.join(stage, 'arm64');
  fs.mkdirSync(fake, { recursive: true });
  fs.writeFileSync(path.join(fake, 'README'), 'a tiny fake linux/arm64 image for platform selection tests\n');
  const arm64 = layout.image('arm64', [await tarOf(fake, ['README'])], ['/README']);

  const index = layout.json(OCI.index, {
    schemaVersion: 2,
    mediaType: OCI.index,
    manifests: [
      { ...strip(busybox.manifest), platform: { architecture: 'amd64', os: 'linux' } },
      { ...strip(arm64.manifest), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
    ],
  });
  layout.writeIndex({ busybox: busybox.manifest, multi: index });
  fs.rmSync(stage, { recursive: true, force: true });

  const withPlatform = (m: FixtureManifest, platform: FixtureDescriptor['platform']): FixtureManifest => ({
    ...m,
    manifest: { ...m.manifest, platform },
  });
  return {
    busybox,
    multi: {
      index,
      amd64: withPlatform(busybox, { architecture: 'amd64', os: 'linux' }),
      arm64: withPlatform(arm64, { architecture: 'arm64', os: 'linux', variant: 'v8' }),
    },
  };
}

function strip(d: FixtureDescriptor): FixtureDescriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** skopeo with the options every call here needs. */
export async function skopeo(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r;
}

/** The manifest bytes a registry serves for `ref` (127.0.0.1:port/repo:tag), read by skopeo. */
export async function inspectRaw(ref: string, options: { creds?: string; tlsVerify?: boolean; certDir?: string } = {}): Promise<Buffer> {
  const args = ['inspect', '--raw', `--tls-verify=${options.tlsVerify ?? false}`];
  if (options.creds) args.push('--creds', options.creds);
  if (options.certDir) args.push('--cert-dir', options.certDir);
  const r = await skopeo([...args, `docker://${ref}`]);
  return Buffer.from(r.stdout, 'utf8');
}

/**
 * The fixture images: the OCI layout and a registry storage seeded with them
 * (pushed once by skopeo into a throw-away plain registry). Cached per machine.
 */
export async function fixtureImages(): Promise<FixtureImages> {
  const stat = fs.statSync(busyboxPath);
  const key = { version: 3, busybox: [stat.size, stat.mtimeMs] };
  const dir = await cachedFixtureDir('images', key, async (d) => {
    const built = await buildLayout(d);
    const storage = path.join(d, 'registry');
    fs.mkdirSync(storage);
    // Imported lazily: registry.ts uses this module for its seed.
    const { startRegistry } = await import('./registry');
    const registry = await startRegistry({ storage: 'empty', storageDir: storage });
    try {
      const dest = (repo: string) => `docker://${registry.host}/${repo}`;
      const src = (name: string) => `oci:${path.join(d, 'layout')}:${name}`;
      await skopeo(['copy', '--dest-tls-verify=false', '--preserve-digests', src('busybox'), dest('busybox:latest')]);
      await skopeo(['copy', '--dest-tls-verify=false', '--preserve-digests', '--all', src('multi'), dest('multi:latest')]);
      await skopeo(['copy', '--dest-tls-verify=false', '--format', 'v2s2', src('busybox'), dest('busybox-docker:latest')]);
      const raw = await inspectRaw(`${registry.host}/busybox-docker:latest`);
      const docker = JSON.parse(raw.toString('utf8')) as {
        mediaType: string;
        config: FixtureDescriptor;
        layers: FixtureDescriptor[];
      };
      const busyboxDocker = {
        manifest: { mediaType: docker.mediaType, digest: sha256(raw), size: raw.length },
        config: docker.config,
        layers: docker.layers,
      };
      fs.writeFileSync(path.join(d, 'fixtures.json'), JSON.stringify({ ...built, busyboxDocker }, null, 2));
    } finally {
      await registry.stop();
    }
  });
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'fixtures.json'), 'utf8')) as Omit<
    FixtureImages,
    'layoutDir' | 'registryStorage'
  >;
  return { ...meta, layoutDir: path.join(dir, 'layout'), registryStorage: path.join(dir, 'registry') };
}

/** The bytes of a blob of the fixture layout. */
export function fixtureBlob(images: FixtureImages, digest: string): Buffer {
  return fs.readFileSync(path.join(images.layoutDir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}
