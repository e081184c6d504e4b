import { PassThrough } from 'stream';
import { readTar } from './tar-reader';
import { rawTar } from './test-fixtures/images';

describe('readTar', () => {
  it('fails a member body whose reader was busy when the input failed, instead of waiting forever', async () => {
    const whole = rawTar([{ path: 'big', data: Buffer.alloc(200_000, 7) }]);
    const input = new PassThrough();
    input.write(whole.subarray(0, 100_000));
    const members = readTar(input);
    const first = await members.next();
    if (first.done) throw new Error('no member');
    const body = first.value.body[Symbol.asyncIterator]();
    expect((await body.next()).done).toBe(false);
    // The reader is "busy" (not awaiting data) while the input fails and the entry is destroyed.
    input.destroy(new Error('connection reset'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const drained = (async () => {
      for (;;) if ((await body.next()).done) return 'ended';
    })();
    await expect(drained).rejects.toThrow('connection reset');
    await members.return(undefined);
  });
});
