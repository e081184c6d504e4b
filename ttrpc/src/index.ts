// @berth/ttrpc: containerd's lightweight RPC over unix sockets (unary calls).
export {
  FRAME_HEADER_LENGTH,
  MAX_FRAME_DATA_LENGTH,
  FrameType,
  FrameFlags,
  FrameDecoder,
  encodeFrame,
} from './frame';
export type { Frame, FrameHeader, DecodedFrame } from './frame';
export type {
  CallOptions,
  DeepPartial,
  RequestOf,
  ResponseOf,
  TtrpcCallContext,
  TtrpcClientOf,
  TtrpcMessageType,
  TtrpcMetadata,
  TtrpcMethodDefinition,
  TtrpcServiceDefinition,
  TtrpcServiceImpl,
} from './definition';
export { errorFromStatus } from './definition';
export { TtrpcConnection } from './connection';
export { TtrpcServer } from './server';
