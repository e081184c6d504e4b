import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * A directory built once and reused by every test file and jest worker of
 * this and later runs, under os.tmpdir()/berth-fixtures-<hash of key>. Builds
 * happen in a private temp dir that is renamed into place, so concurrent
 * workers never see a half-built fixture; the loser of a race discards its copy.
 */
export async function cachedFixtureDir(
  name: string,
  key: unknown,
  build: (dir: string) => Promise<void>,
): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify([name, key])).digest('hex').slice(0, 16);
  const final = path.join(os.tmpdir(), `berth-fixtures-${hash}`);
  if (fs.existsSync(path.join(final, '.complete'))) return final;
  const building = fs.mkdtempSync(path.join(os.tmpdir(), `berth-fixtures-${hash}.build-`));
  try {
    await build(building);
    fs.writeFileSync(path.join(building, '.complete'), new Date().toISOString());
    try {
      fs.renameSync(building, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another worker finished first; a stale incomplete dir is replaced.
      if (!fs.existsSync(path.join(final, '.complete'))) {
        fs.rmSync(final, { recursive: true, force: true });
        fs.renameSync(building, final);
      }
    }
  } finally {
    fs.rmSync(building, { recursive: true, force: true });
  }
  return final;
}
