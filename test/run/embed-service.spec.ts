import * as path from 'path';
import { type RunningService, startEmbedService } from '@berth/example-embed-service';
import { makeTempDir, removeDir } from '../harness/daemon';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import { host, killCgroupProcesses, killShims, mountsUnder, removeCgroups, uniqueName } from '../tasks/helpers';
import { DEFAULT_FIFO_ROOT, leftoverFifos } from './helpers';

// The embedding example end to end: berth inside an HTTP service, running a
// container per POST /run with runContainer, no daemon anywhere.
describeAsRoot('embed-service POST /run', () => {
  const ns = uniqueName('run-embed');
  let registry: RegistryHandle;
  let dir: string;
  let svc: RunningService;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = makeTempDir('berth-embed-');
    svc = await startEmbedService({
      root: path.join(dir, 'root'),
      state: path.join(dir, 'state'),
      registry: { plainHttp: true },
      namespace: ns,
    });
  });

  afterAll(async () => {
    await svc?.close();
    killShims(ns);
    killCgroupProcesses(ns);
    if (dir) {
      for (const target of mountsUnder(dir)) await host('umount', ['-l', target]);
      removeDir(dir);
    }
    removeCgroups(ns);
    await registry?.stop();
  });

  const postRun = async (body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${svc.url}/run`, { method: 'POST', body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it("pulls the image, runs the container in-process and answers its output and exit code", async () => {
    const first = await postRun({ image: registry.ref('busybox:latest'), args: ['sh', '-c', 'echo "hi from $WHERE"; echo warn >&2; exit 3'], env: ['WHERE=embed'] });
    expect(first).toEqual({ status: 200, json: { exitCode: 3, stdout: 'hi from embed\n', stderr: 'warn\n' } });

    // The image is there now: the second run does not pull.
    const second = await postRun({ image: registry.ref('busybox:latest'), args: ['cat', '/etc/berth-fixture'] });
    expect(second).toEqual({ status: 200, json: { exitCode: 0, stdout: 'hello from a berth fixture image\n', stderr: '' } });
  });

  it('leaves no container, task, snapshot or FIFO behind', async () => {
    expect(await svc.berth.containers.list()).toEqual([]);
    expect(await svc.berth.tasks.list()).toEqual([]);
    const keys = (await svc.berth.snapshots('overlayfs').list()).map((s) => s.name);
    expect(keys.filter((k) => k.startsWith('embed-'))).toEqual([]);
    expect(leftoverFifos(DEFAULT_FIFO_ROOT, ['embed-'])).toEqual([]);
  });

  it('answers a missing image with 404', async () => {
    const missing = await postRun({ image: registry.ref('no-such-image:latest'), args: ['true'] });
    expect(missing.status).toBe(404);
    expect(String(missing.json.error)).toMatch(/no-such-image/);
  });
});
