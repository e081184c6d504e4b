import { mkdtempSync, openSync, rmSync, writeSync, closeSync, constants } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Writable } from 'stream';
import pino from 'pino';
import { mkfifo } from '@berth/sys';
import { ShimLog } from './shim-log';

describe('ShimLog', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'berth-rtv2-log-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function recordingLogger() {
    const records: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) records.push(JSON.parse(line));
        done();
      },
    });
    return { logger: pino({ level: 'debug' }, sink), records };
  }

  it('copies the lines a shim writes into the logger, keeping warnings and errors visible', async () => {
    const fifo = join(dir, 'log');
    mkfifo(fifo, 0o700);
    const { logger, records } = recordingLogger();
    const log = ShimLog.open(fifo, logger);
    // Opening for writing would block (or fail non-blocking) if nobody read the FIFO.
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(writer, 'time="t" level=info msg="starting signal loop"\n');
    writeSync(writer, 'time="t" level=warning msg="cleanup failed"\ntime="t" level=error msg="boom"\n');
    closeSync(writer);
    // A writer leaving does not end the stream: the next shim (or reconnect) writes again.
    const again = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(again, 'plain line\n');
    closeSync(again);
    for (let i = 0; i < 100 && records.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    log.close();
    expect(records.map((r) => [r.level, r.msg])).toEqual([
      [20, 'time="t" level=info msg="starting signal loop"'],
      [40, 'time="t" level=warning msg="cleanup failed"'],
      [50, 'time="t" level=error msg="boom"'],
      [20, 'plain line'],
    ]);
  });
});
