import type { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { Any } from './gen/google/protobuf/any';

/**
 * The part of a generated ts-proto codec that packing into an Any needs.
 * `$type` is the message's full proto name, e.g. `containerd.events.TaskExit`.
 */
export interface MessageCodec<T> {
  readonly $type: string;
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
  fromJSON(object: unknown): T;
  toJSON(message: T): unknown;
}

/**
 * The full proto name an Any refers to. containerd writes bare names
 * (`containerd.events.TaskExit`); other producers prefix a host
 * (`type.googleapis.com/...`), which protobuf says to ignore.
 */
export function typeNameFromUrl(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** Packs a message the way containerd's typeurl does: bare full name as the type URL. */
export function packAny<T>(codec: MessageCodec<T>, message: T): Any {
  const bytes = codec.encode(message).finish();
  // Any.value is a Buffer under ts-proto's env=node; wrap without copying.
  return { typeUrl: codec.$type, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/** Decodes an Any that must hold `codec`'s message; throws on any other type. */
export function unpackAny<T>(any: Any, codec: MessageCodec<T>): T {
  const typeName = typeNameFromUrl(any.typeUrl);
  if (typeName !== codec.$type) {
    throw new TypeError(`Any holds ${any.typeUrl || '(no type)'}, expected ${codec.$type}`);
  }
  return codec.decode(any.value);
}

/** True when `any` holds `codec`'s message, so `unpackAny` will not throw on the type. */
export function isAnyOf<T>(any: Any, codec: MessageCodec<T>): boolean {
  return typeNameFromUrl(any.typeUrl) === codec.$type;
}
