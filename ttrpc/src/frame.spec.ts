import { ResourceExhaustedError } from '@berth/core';
import {
  DecodedFrame,
  FRAME_HEADER_LENGTH,
  FrameDecoder,
  FrameType,
  MAX_FRAME_DATA_LENGTH,
  encodeFrame,
} from './frame';

describe('ttrpc frames', () => {
  it('lays the header out big-endian: length, stream id, type, flags', () => {
    const frame = encodeFrame({ streamId: 0x01020305, type: FrameType.Response, flags: 0x04 }, Buffer.from('abc'));
    expect([...frame]).toEqual([0, 0, 0, 3, 1, 2, 3, 5, 2, 4, 0x61, 0x62, 0x63]);
    expect(FRAME_HEADER_LENGTH).toBe(10);
    expect(MAX_FRAME_DATA_LENGTH).toBe(4194304);
  });

  it('refuses to encode a payload over 4 MiB, accepts exactly 4 MiB', () => {
    expect(() => encodeFrame({ streamId: 1, type: 1, flags: 0 }, Buffer.alloc(MAX_FRAME_DATA_LENGTH + 1))).toThrow(
      ResourceExhaustedError,
    );
    expect(encodeFrame({ streamId: 1, type: 1, flags: 0 }, Buffer.alloc(MAX_FRAME_DATA_LENGTH)).length).toBe(
      MAX_FRAME_DATA_LENGTH + FRAME_HEADER_LENGTH,
    );
  });

  it('reassembles frames fed one byte at a time, including empty ones', () => {
    const bytes = Buffer.concat([
      encodeFrame({ streamId: 1, type: FrameType.Request, flags: 0 }, Buffer.from('hello')),
      encodeFrame({ streamId: 3, type: FrameType.Data, flags: 0x05 }, Buffer.alloc(0)),
      encodeFrame({ streamId: 5, type: FrameType.Request, flags: 0 }, Buffer.from('x')),
    ]);
    const decoder = new FrameDecoder();
    const out: DecodedFrame[] = [];
    for (const byte of bytes) out.push(...decoder.push(Buffer.of(byte)));
    expect(out).toEqual([
      { kind: 'frame', frame: { streamId: 1, type: 1, flags: 0, data: Buffer.from('hello') } },
      { kind: 'frame', frame: { streamId: 3, type: 3, flags: 5, data: Buffer.alloc(0) } },
      { kind: 'frame', frame: { streamId: 5, type: 1, flags: 0, data: Buffer.from('x') } },
    ]);
  });

  it('returns every frame of a chunk holding many', () => {
    const frames = Array.from({ length: 100 }, (_, i) =>
      encodeFrame({ streamId: 2 * i + 1, type: FrameType.Request, flags: 0 }, Buffer.from(`payload ${i}`)),
    );
    const out = new FrameDecoder().push(Buffer.concat(frames));
    expect(out.map((d) => (d.kind === 'frame' ? d.frame.data.toString() : 'oversized'))).toEqual(
      Array.from({ length: 100 }, (_, i) => `payload ${i}`),
    );
  });

  it('skips the bytes of an oversized frame, reports it once skipped, and decodes what follows', () => {
    const length = MAX_FRAME_DATA_LENGTH + 10;
    const header = Buffer.alloc(FRAME_HEADER_LENGTH);
    header.writeUInt32BE(length, 0);
    header.writeUInt32BE(7, 4);
    header.writeUInt8(FrameType.Request, 8);
    const body = Buffer.alloc(length, 0xab);
    const next = encodeFrame({ streamId: 9, type: FrameType.Request, flags: 0 }, Buffer.from('after'));

    const decoder = new FrameDecoder();
    expect(decoder.push(header)).toEqual([]);
    expect(decoder.push(body.subarray(0, length - 1))).toEqual([]);
    expect(decoder.push(Buffer.concat([body.subarray(length - 1), next]))).toEqual([
      { kind: 'oversized', header: { streamId: 7, type: 1, flags: 0 }, length },
      { kind: 'frame', frame: { streamId: 9, type: 1, flags: 0, data: Buffer.from('after') } },
    ]);
  });
});
