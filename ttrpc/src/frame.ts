import { ResourceExhaustedError } from '@berth/core';

/** Bytes in a frame header: u32 data length, u32 stream id, u8 type, u8 flags (big-endian). */
export const FRAME_HEADER_LENGTH = 10;

/** Largest frame payload either side accepts (4 MiB). */
export const MAX_FRAME_DATA_LENGTH = 4 << 20;

/** The frame type byte. */
export enum FrameType {
  Request = 1,
  Response = 2,
  /** Streaming payloads (ttrpc 1.2); this implementation is unary-only and ignores them. */
  Data = 3,
}

/** Flag bits of Request and Data frames (ttrpc 1.2 streaming; 0 for unary calls). */
export const FrameFlags = {
  RemoteClosed: 0x01,
  RemoteOpen: 0x02,
  NoData: 0x04,
} as const;

export interface FrameHeader {
  streamId: number;
  type: number;
  flags: number;
}

export interface Frame extends FrameHeader {
  data: Buffer;
}

/**
 * What a FrameDecoder produces: a whole frame, or notice that a frame larger than
 * MAX_FRAME_DATA_LENGTH arrived and its bytes were skipped (so the receiver can
 * answer that stream with ResourceExhausted).
 */
export type DecodedFrame =
  | { kind: 'frame'; frame: Frame }
  | { kind: 'oversized'; header: FrameHeader; length: number };

/** The error a sender or receiver reports for a payload over the frame limit. */
export function oversizedError(length: number): ResourceExhaustedError {
  return new ResourceExhaustedError(
    `ttrpc message of ${length} bytes exceeds the maximum of ${MAX_FRAME_DATA_LENGTH} bytes`,
  );
}

/** One frame as bytes; throws ResourceExhaustedError when `data` is over the limit. */
export function encodeFrame(header: FrameHeader, data: Uint8Array): Buffer {
  if (data.length > MAX_FRAME_DATA_LENGTH) throw oversizedError(data.length);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + data.length);
  frame.writeUInt32BE(data.length, 0);
  frame.writeUInt32BE(header.streamId, 4);
  frame.writeUInt8(header.type, 8);
  frame.writeUInt8(header.flags, 9);
  frame.set(data, FRAME_HEADER_LENGTH);
  return frame;
}

/**
 * Reassembles frames from a byte stream cut at arbitrary places. The body of each
 * frame is copied once into a buffer of its exact size, so a byte-at-a-time stream
 * costs no more than a single large chunk.
 */
export class FrameDecoder {
  private readonly headerBytes = Buffer.alloc(FRAME_HEADER_LENGTH);
  private headerFilled = 0;
  private header: FrameHeader | undefined;
  private length = 0;
  /** Body of the current frame; undefined while an oversized frame is being skipped. */
  private body: Buffer | undefined;
  private bodyFilled = 0;

  /** Feeds bytes in; returns every frame they complete, in order. */
  push(chunk: Uint8Array): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.header) {
        const take = Math.min(FRAME_HEADER_LENGTH - this.headerFilled, chunk.length - offset);
        this.headerBytes.set(chunk.subarray(offset, offset + take), this.headerFilled);
        this.headerFilled += take;
        offset += take;
        if (this.headerFilled === FRAME_HEADER_LENGTH) this.startFrame();
      } else {
        const take = Math.min(this.length - this.bodyFilled, chunk.length - offset);
        this.body?.set(chunk.subarray(offset, offset + take), this.bodyFilled);
        this.bodyFilled += take;
        offset += take;
      }
      // Checked after every step so that zero-length frames complete at once.
      if (this.header && this.bodyFilled === this.length) out.push(this.finishFrame());
    }
    return out;
  }

  private startFrame(): void {
    this.length = this.headerBytes.readUInt32BE(0);
    this.header = {
      streamId: this.headerBytes.readUInt32BE(4),
      type: this.headerBytes.readUInt8(8),
      flags: this.headerBytes.readUInt8(9),
    };
    this.body = this.length <= MAX_FRAME_DATA_LENGTH ? Buffer.allocUnsafe(this.length) : undefined;
    this.bodyFilled = 0;
  }

  private finishFrame(): DecodedFrame {
    const header = this.header as FrameHeader;
    const body = this.body;
    const length = this.length;
    this.header = undefined;
    this.body = undefined;
    this.headerFilled = 0;
    return body ? { kind: 'frame', frame: { ...header, data: body } } : { kind: 'oversized', header, length };
  }
}
