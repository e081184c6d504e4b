// The main job: show berth working end to end on this machine.
// Runs a berthd on a temp socket, talks to it with berth's CLI and with
// containerd's own ctr, then embeds berth in-process. Cleans up after itself.
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const repo = path.resolve(__dirname, '..');
const berthd = path.join(repo, 'cmd/berthd/lib/main.js');
const berthCli = path.join(repo, 'cmd/berth/lib/main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-main-'));
const address = path.join(dir, 'berth.sock');

function show(cmd, args) {
  console.log(`\n$ ${[path.basename(cmd) === 'node' ? 'berth' : cmd, ...args].join(' ')}`);
  const out = execFileSync(cmd === 'berth' ? process.execPath : cmd, cmd === 'berth' ? [berthCli, '-a', address, ...args] : ['-a', address, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
  });
  process.stdout.write(out);
}

function connectable() {
  return new Promise((resolve) => {
    const c = net.connect(address);
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

async function main() {
  const daemon = spawn(process.execPath, [berthd, '--root', path.join(dir, 'root'), '--state', path.join(dir, 'state'), '--address', address, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    for (let i = 0; i < 400 && !(fs.existsSync(address) && (await connectable())); i++) await new Promise((r) => setTimeout(r, 25));
    console.log(`berthd is serving on ${address}`);
    show('berth', ['version']);
    show('berth', ['namespaces', 'create', 'demo', 'team=berth']);
    show('ctr', ['namespaces', 'ls']);
    show('ctr', ['version']);
    show('berth', ['plugins', 'ls']);

    console.log('\n# embedded, no daemon:');
    const { createBerth } = require(path.join(repo, 'core'));
    const berth = await createBerth({ root: path.join(dir, 'embedded-root'), state: path.join(dir, 'embedded-state') });
    await berth.namespaces.create('embedded', { via: 'createBerth' });
    console.log((await berth.namespaces.list()).map((n) => `${n.name} ${JSON.stringify(n.labels)}`).join('\n'));
    await berth.close();
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`main job failed: ${err.message}`);
  process.exit(1);
});
