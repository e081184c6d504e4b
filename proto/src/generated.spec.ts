import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const packageDir = path.resolve(__dirname, '..');
const committedDir = path.join(packageDir, 'src', 'gen');
const generateScript = path.join(packageDir, 'scripts', 'generate.sh');

const protocInstalled = spawnSync('protoc', ['--version']).status === 0;
if (!protocInstalled) {
  // eslint-disable-next-line no-console
  console.warn('generated.spec: protoc not installed (apt-get install protobuf-compiler); skipping the regeneration check');
}
const itWhenProtoc = protocInstalled ? it : it.skip;

function listFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.push(path.relative(root, full));
    }
  };
  walk(root);
  return files.sort();
}

describe('generated code', () => {
  let outDir: string;

  beforeAll(() => {
    outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-proto-gen-'));
  });

  afterAll(() => {
    fs.rmSync(outDir, { recursive: true, force: true });
  });

  itWhenProtoc('matches what scripts/generate.sh produces (run `npm run generate -w proto` after editing .proto files)', () => {
    const result = spawnSync('bash', [generateScript, outDir], { encoding: 'utf8' });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });

    const expectedFiles = listFiles(outDir);
    expect(listFiles(committedDir)).toEqual(expectedFiles);

    const stale = expectedFiles.filter(
      (file) => !fs.readFileSync(path.join(outDir, file)).equals(fs.readFileSync(path.join(committedDir, file))),
    );
    expect(stale).toEqual([]);
  });
});
