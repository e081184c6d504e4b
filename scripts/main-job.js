// The main job: show berth running real containers on this machine.
// A berthd on temp dirs runs containers for berth's CLI and for containerd's own
// ctr (the image comes from busybox-static, built offline by demo-image.js),
// then berth runs one more embedded in this process, with no daemon.
// Cleans up after itself: containers, shims, mounts, the daemon, temp dirs.
const { spawn, execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { PassThrough } = require('stream');
const { demoImage, DEMO_IMAGE_NAME } = require('./demo-image');

const repo = path.resolve(__dirname, '..');
const berthd = path.join(repo, 'cmd/berthd/lib/main.js');
const berthCli = path.join(repo, 'cmd/berth/lib/main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-main-'));
const address = path.join(dir, 'berth.sock');
const namespace = `main-job-${process.pid}`;
const image = DEMO_IMAGE_NAME;

function show(cmd, args, { allowFail = false } = {}) {
  console.log(`\n$ ${[cmd, ...args].join(' ')}`);
  const file = cmd === 'berth' ? process.execPath : cmd;
  const argv = cmd === 'berth' ? [berthCli, '-a', address, '-n', namespace, ...args] : ['-a', address, '-n', namespace, ...args];
  const result = spawnSync(file, argv, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
  });
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  if (result.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} exited with ${result.status}`);
  return result;
}

function connectable() {
  return new Promise((resolve) => {
    const c = net.connect(address);
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

/** Unmounts whatever is still mounted under `root` (deepest first): the job leaves nothing behind. */
function unmountBelow(root) {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m) => m && (m === root || m.startsWith(`${root}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}

async function daemonJob(archive) {
  const daemon = spawn(
    process.execPath,
    [berthd, '--root', path.join(dir, 'root'), '--state', path.join(dir, 'state'), '--address', address, '--log-level', 'warn'],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  try {
    for (let i = 0; i < 400 && !(fs.existsSync(address) && (await connectable())); i++) await new Promise((r) => setTimeout(r, 25));
    console.log(`berthd is serving on ${address}`);
    show('berth', ['version']);
    show('berth', ['images', 'import', archive]);
    show('berth', ['run', '--rm', image, 'hello']);
    show('ctr', ['run', '--rm', image, 'hello-from-ctr', 'sh', '-c', 'echo "containerd\'s ctr ran me through berthd; my hostname is $(hostname)"']);
    show('berth', ['run', '-d', image, 'sleeper', 'sleep', '300']);
    show('berth', ['tasks', 'ls']);
    show('ctr', ['tasks', 'exec', '--exec-id', 'look', 'sleeper', 'ps']);
    show('berth', ['tasks', 'kill', '-s', 'SIGKILL', 'sleeper']);
    // The exit reaches the task a moment after the signal.
    for (let i = 0; i < 100; i++) {
      const ls = spawnSync(process.execPath, [berthCli, '-a', address, '-n', namespace, 'tasks', 'ls'], { encoding: 'utf8' });
      if (/STOPPED/.test(ls.stdout)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    show('berth', ['tasks', 'ls']);
    show('berth', ['tasks', 'rm', 'sleeper']);
    show('berth', ['containers', 'rm', 'sleeper']);
    const code = show('berth', ['run', '--rm', image, 'fails', 'sh', '-c', 'exit 3'], { allowFail: true }).status;
    console.log(`(berth run exited with the container's exit code: ${code})`);
  } finally {
    // Whatever an error left running goes now; shims outlive berthd by design.
    spawnSync(process.execPath, [berthCli, '-a', address, '-n', namespace, 'tasks', 'kill', '-s', 'SIGKILL', 'sleeper'], { stdio: 'ignore' });
    spawnSync(process.execPath, [berthCli, '-a', address, '-n', namespace, 'tasks', 'rm', '-f', 'sleeper'], { stdio: 'ignore' });
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
}

async function embeddedJob(archive) {
  console.log('\n# embedded in this process, no daemon: createBerth() + runContainer()');
  const { createBerth, runContainer } = require(path.join(repo, 'plugins/builtins'));
  const berth = await createBerth({
    root: path.join(dir, 'embedded-root'),
    state: path.join(dir, 'embedded-state'),
    namespace,
  });
  try {
    await berth.images.import(fs.createReadStream(archive));
    const stdout = new PassThrough();
    let output = '';
    stdout.on('data', (chunk) => (output += chunk));
    const result = await runContainer(berth, {
      id: 'embedded',
      image,
      args: ['sh', '-c', 'echo "hello from a container run in-process by createBerth(); uid $(id -u)"'],
      stdout,
      stderr: process.stderr,
      rm: true,
    });
    process.stdout.write(output);
    console.log(`exit status ${result.exitStatus}`);
  } finally {
    await berth.close();
  }
}

async function main() {
  const archive = demoImage();
  try {
    await daemonJob(archive);
    await embeddedJob(archive);
  } finally {
    unmountBelow(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`main job failed: ${err.message}`);
  process.exit(1);
});
