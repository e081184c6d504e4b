import * as fs from 'fs';
import * as path from 'path';
import { describeAsRoot } from '../harness/root';
import {
  eventually,
  fifoReader,
  forceCleanup,
  loadRuntime,
  LoadedRuntime,
  makeTestDirs,
  minimalSpec,
  rootfsMount,
  RuntimeTestDirs,
  shimPids,
} from './helpers';

const NS = `rtv2-many-${process.pid}`;
// 10 in the suite; BERTH_RTV2_TASKS=50 checks the runtime's 50-at-once target by hand.
const COUNT = Number(process.env.BERTH_RTV2_TASKS ?? 10);

describeAsRoot('runtime v2: many tasks at once', () => {
  let dirs: RuntimeTestDirs;
  let loaded: LoadedRuntime;

  beforeAll(async () => {
    dirs = makeTestDirs('berth-rtv2-many-');
    loaded = await loadRuntime(dirs);
  });

  afterAll(async () => {
    await loaded?.close();
    forceCleanup(NS, dirs.dir);
  });

  it(`runs ${COUNT} tasks concurrently to completion, each with its own output and exit status`, async () => {
    const ids = Array.from({ length: COUNT }, (_, i) => `many-${i}`);
    const results = await Promise.all(
      ids.map(async (id, i) => {
        const out = fifoReader(path.join(dirs.dir, `${id}.out`));
        const err = fifoReader(path.join(dirs.dir, `${id}.err`));
        const task = await loaded.runtime.create(NS, id, {
          spec: minimalSpec(NS, id, ['sh', '-c', `sleep 0.2; echo task ${i}; exit ${i % 5}`]),
          rootfs: [rootfsMount(dirs.rootfs)],
          io: { terminal: false, stdout: out.path, stderr: err.path },
          runtime: 'io.containerd.runc.v2',
        });
        await task.start();
        const exit = await task.wait();
        const text = await out.text;
        const deleted = await loaded.runtime.delete(NS, id);
        return { exit: exit.exitStatus, text, deleted: deleted.exitStatus };
      }),
    );
    results.forEach((r, i) => expect(r).toEqual({ exit: i % 5, text: `task ${i}\n`, deleted: i % 5 }));
    expect(await loaded.runtime.tasks(NS)).toEqual([]);
    expect(fs.readdirSync(path.join(dirs.state, 'io.berth.runtime.v2.task', NS))).toEqual([]);
    await eventually('every shim to exit', () => shimPids(NS).length === 0);
  }, 120_000);
});
