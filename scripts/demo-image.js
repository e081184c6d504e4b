// Builds the main job's demo image without a network: an OCI image layout tar
// holding one layer made from Debian's busybox-static (busybox, its applets as
// symlinks, /etc/passwd and /etc/group). Deterministic, cached under .cache/.
//
//   node scripts/demo-image.js      prints the path of the tar (building it if needed)
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const tar = require('tar');

const IMAGE_NAME = 'docker.io/library/berth-demo:latest';
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'echo', 'cat', 'ls', 'id', 'uname', 'hostname', 'sleep', 'true', 'false', 'env', 'wc', 'head', 'mkdir', 'touch', 'rm', 'ps', 'kill', 'date', 'tty', 'stty', 'grep', 'sed'];
const EPOCH = new Date('2024-01-01T00:00:00Z');

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

function layerTar(rootfs) {
  const entries = ['bin', 'etc', 'tmp', 'root'];
  // portable: no uname/gname or atime/ctime, so the bytes depend on the content only.
  const chunks = [];
  const stream = tar.c({ cwd: rootfs, portable: true, mtime: EPOCH, sync: true }, entries);
  stream.on('data', (c) => chunks.push(c));
  return Buffer.concat(chunks);
}

function buildRootfs(dir) {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.mkdirSync(path.join(dir, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.mkdirSync(path.join(dir, 'root'), { mode: 0o700 });
  fs.copyFileSync(BUSYBOX, path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const applet of APPLETS) fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
  fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\ndemo:x:1000:1000:demo:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(dir, 'etc', 'group'), 'root:x:0:\ndemo:x:1000:\nnogroup:x:65534:\n');
}

function build(out) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-demo-image-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    buildRootfs(rootfs);
    const raw = layerTar(rootfs);
    const layer = zlib.gzipSync(raw, { level: 6 });
    const config = Buffer.from(
      JSON.stringify({
        created: EPOCH.toISOString(),
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
          Cmd: ['/bin/sh', '-c', 'echo "hello from a berth container: $(uname -srm), pid $$, user $(id -un)"'],
          WorkingDir: '/',
        },
        rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(raw)}`] },
        history: [{ created: EPOCH.toISOString(), created_by: 'scripts/demo-image.js (busybox-static)' }],
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(layer)}`, size: layer.length }],
      }),
    );
    const index = {
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${sha256(manifest)}`,
          size: manifest.length,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': IMAGE_NAME, 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    };
    const layout = path.join(work, 'layout');
    fs.mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
    for (const blob of [layer, config, manifest]) fs.writeFileSync(path.join(layout, 'blobs', 'sha256', sha256(blob)), blob);
    fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify(index));
    const partial = `${out}.partial`;
    tar.c({ cwd: layout, portable: true, mtime: EPOCH, sync: true, file: partial }, ['oci-layout', 'index.json', 'blobs']);
    fs.renameSync(partial, out);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The demo image's OCI layout tar, built once per busybox binary. */
function demoImage() {
  const stat = fs.statSync(BUSYBOX);
  const dir = path.join(__dirname, '..', '.cache', 'demo-image');
  const out = path.join(dir, `berth-demo-${stat.size}-${Math.floor(stat.mtimeMs)}.tar`);
  if (!fs.existsSync(out)) {
    fs.mkdirSync(dir, { recursive: true });
    build(out);
  }
  return out;
}

module.exports = { demoImage, DEMO_IMAGE_NAME: IMAGE_NAME };

if (require.main === module) console.log(demoImage());
