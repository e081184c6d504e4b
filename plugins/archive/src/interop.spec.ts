import { execFileSync } from 'child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { gzipSync } from 'zlib';
import type { ContentStore, Descriptor } from '@berth/core';
import { exportArchive } from './export';
import { importArchive } from './import';
import { Collector, json, layerTar, OCI, putBlob, sha256 } from './test-fixtures/images';
import { MemoryContentStore } from './test-fixtures/memory-content-store';

/**
 * Archives made and read by other tools: umoci (OCI layouts), skopeo
 * (oci-archive and docker-archive, a real `docker save` layout) and GNU tar.
 * Each test is skipped where its tool is not installed.
 */

function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const run = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const itWith = (tools: string[]) => (tools.every(have) ? it : it.skip);

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'berth-archive-interop-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** An OCI layout made by umoci: one image `t` with one gzip layer holding hello.txt. */
function umociLayout(): { layout: string; manifestDigest: string } {
  const layout = join(work, 'umoci-layout');
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:t`]);
  writeFileSync(join(work, 'hello.txt'), 'hello from umoci\n');
  run('umoci', ['insert', '--rootless', '--image', `${layout}:t`, join(work, 'hello.txt'), '/hello.txt']);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  return { layout, manifestDigest: index.manifests[0].digest };
}

async function readJsonBlob(store: ContentStore, digest: string): Promise<{ [key: string]: unknown }> {
  const chunks: Buffer[] = [];
  for await (const c of await store.read(digest)) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString());
}

/** Images with real tar layers, so tools that unpack them can. */
async function realImages(store: ContentStore): Promise<{ single: Descriptor; index: Descriptor }> {
  const manifests: Descriptor[] = [];
  for (const [arch, text] of [
    ['amd64', 'made for amd64\n'],
    ['arm64', 'made for arm64\n'],
  ]) {
    const plain = layerTar('hello.txt', text);
    const layer = await putBlob(store, gzipSync(plain), OCI.layerGzip);
    const config = await putBlob(
      store,
      json({ architecture: arch, os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(plain)] } }),
      OCI.config,
    );
    manifests.push(
      await putBlob(store, json({ schemaVersion: 2, mediaType: OCI.manifest, config, layers: [layer] }), OCI.manifest, {
        platform: { os: 'linux', architecture: arch },
      }),
    );
  }
  const index = await putBlob(store, json({ schemaVersion: 2, mediaType: OCI.index, manifests }), OCI.index);
  const { platform: _platform, ...single } = manifests[0];
  return { single, index };
}

async function exportToFile(store: ContentStore, images: Array<{ name: string; target: Descriptor }>): Promise<string> {
  const out = new Collector();
  await exportArchive(out, { provider: store, images });
  const file = join(work, 'berth-export.tar');
  writeFileSync(file, out.buffer);
  return file;
}

describe('interop: importing archives other tools made', () => {
  itWith(['umoci', 'tar'])('imports a umoci layout packed with `tar -C layout -cf x.tar .`', async () => {
    const { layout, manifestDigest } = umociLayout();
    const tarFile = join(work, 'umoci.tar');
    run('tar', ['-C', layout, '-cf', tarFile, '.']);

    const store = new MemoryContentStore();
    const imported = await importArchive(createReadStream(tarFile), { store, baseName: 'example.com/umoci' });
    expect(imported).toEqual([{ name: 'example.com/umoci:t', target: expect.objectContaining({ digest: manifestDigest, mediaType: OCI.manifest }) }]);
    const manifest = (await readJsonBlob(store, manifestDigest)) as { config: Descriptor; layers: Descriptor[] };
    expect(manifest.layers).toHaveLength(1);
    expect((await store.info(manifestDigest)).labels).toEqual({
      'containerd.io/gc.ref.content.config': manifest.config.digest,
      'containerd.io/gc.ref.content.l.0': manifest.layers[0].digest,
    });
  });

  itWith(['umoci', 'skopeo'])('imports an oci-archive written by skopeo', async () => {
    const { layout, manifestDigest } = umociLayout();
    const archive = join(work, 'skopeo-oci.tar');
    run('skopeo', ['copy', '--quiet', `oci:${layout}:t`, `oci-archive:${archive}:t`]);

    const imported = await importArchive(createReadStream(archive), { store: new MemoryContentStore(), baseName: 'example.com/sk' });
    expect(imported.map((i) => [i.name, i.target.digest])).toEqual([['example.com/sk:t', manifestDigest]]);
  });

  itWith(['umoci', 'skopeo'])('imports a docker-archive (docker save layout, symlinked layers) written by skopeo', async () => {
    const { layout } = umociLayout();
    const archive = join(work, 'docker.tar');
    run('skopeo', ['copy', '--quiet', `oci:${layout}:t`, `docker-archive:${archive}:example.com/foo:t`]);

    const store = new MemoryContentStore();
    const imported = await importArchive(createReadStream(archive), { store });
    expect(imported.map((i) => i.name)).toEqual(['example.com/foo:t']);
    const target = imported[0].target;
    expect(target.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const manifest = (await readJsonBlob(store, target.digest)) as { config: Descriptor; layers: Descriptor[] };
    const config = (await readJsonBlob(store, manifest.config.digest)) as { rootfs: { diff_ids: string[] }; os: string; architecture: string };
    // docker save layers are uncompressed: their digest is the diff ID the config lists.
    expect(manifest.layers.map((l) => l.digest)).toEqual(config.rootfs.diff_ids);
    expect(manifest.layers[0].mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar');
    expect(target.platform).toEqual({ os: config.os, architecture: config.architecture });
  });
});

describe('interop: other tools reading what exportArchive writes', () => {
  itWith(['skopeo'])('skopeo reads the export and copies it with the same digests', async () => {
    const store = new MemoryContentStore();
    const { single, index } = await realImages(store);
    const file = await exportToFile(store, [
      { name: 'example.com/app:v1', target: single },
      { name: 'example.com/multi:v2', target: index },
    ]);

    const raw = run('skopeo', ['inspect', '--raw', `oci-archive:${file}:v1`]);
    expect(sha256(raw)).toBe(single.digest);

    const copy = join(work, 'copy');
    run('skopeo', ['copy', '--quiet', '--all', `oci-archive:${file}:v2`, `oci:${copy}:v2`]);
    const copied = JSON.parse(readFileSync(join(copy, 'index.json'), 'utf8'));
    expect(copied.manifests[0].digest).toBe(index.digest);
  });

  itWith(['umoci', 'tar'])('umoci lists the tags of the export and unpacks its layers', async () => {
    const store = new MemoryContentStore();
    const { single } = await realImages(store);
    const file = await exportToFile(store, [{ name: 'example.com/app:v1', target: single }]);

    const layout = join(work, 'layout');
    mkdirSync(layout);
    run('tar', ['-C', layout, '-xf', file]);
    expect(run('umoci', ['ls', '--layout', layout]).trim().split('\n')).toEqual(['v1']);
    const bundle = join(work, 'bundle');
    run('umoci', ['unpack', '--rootless', '--image', `${layout}:v1`, bundle]);
    expect(readFileSync(join(bundle, 'rootfs', 'hello.txt'), 'utf8')).toBe('made for amd64\n');
  });

  itWith(['tar'])('GNU tar lists the export without complaint', async () => {
    const store = new MemoryContentStore();
    const { index } = await realImages(store);
    const file = await exportToFile(store, [{ name: 'example.com/multi:v2', target: index }]);
    const listing = run('tar', ['-tvf', file]);
    expect(listing).toContain('oci-layout');
    expect(listing).toContain(`blobs/sha256/${index.digest.slice(7)}`);
    expect(existsSync(file)).toBe(true);
  });
});
