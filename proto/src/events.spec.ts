import * as generatedEvents from './gen/containerd/events/events';
import * as generatedImageEvents from './gen/containerd/services/images/v1/image_events';
import {
  Any,
  containerdEvents,
  decodeEvent,
  eventCodecFor,
  eventCodecs,
  eventToJSON,
  imageEventsV1,
  isAnyOf,
  packAny,
  typeNameFromUrl,
  unpackAny,
} from './index';

// Top-level event messages: codecs with a $type, minus map entries and the
// helper types that only appear nested inside an event.
function topLevelEventNames(module: Record<string, unknown>): string[] {
  const helperTypes = new Set(['containerd.events.TaskIO', 'containerd.events.ContainerCreate.Runtime']);
  return Object.values(module)
    .map((value) => (typeof value === 'object' && value !== null && '$type' in value ? String(value.$type) : undefined))
    .filter((name): name is string => name !== undefined && !name.endsWith('Entry') && !helperTypes.has(name))
    .sort();
}

describe('eventCodecs', () => {
  it('covers every generated event message', () => {
    const generated = [...topLevelEventNames(generatedEvents), ...topLevelEventNames(generatedImageEvents)].sort();
    expect(Object.keys(eventCodecs).sort()).toEqual(generated);
    expect(generated).toHaveLength(23);
  });

  it('keys image events by their containerd.services.images.v1 names', () => {
    expect(eventCodecs['containerd.services.images.v1.ImageCreate']).toBe(imageEventsV1.ImageCreate);
    expect(eventCodecs['containerd.events.TaskExit']).toBe(containerdEvents.TaskExit);
  });
});

describe('Any helpers', () => {
  const exit = { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 137, exitedAt: new Date(1_700_000_000_123) };

  it('packs with a bare type URL and unpacks with the matching codec', () => {
    const any = packAny(containerdEvents.TaskExit, exit);
    expect(any.typeUrl).toBe('containerd.events.TaskExit');
    expect(Buffer.isBuffer(any.value)).toBe(true);
    expect(isAnyOf(any, containerdEvents.TaskExit)).toBe(true);
    expect(unpackAny(any, containerdEvents.TaskExit)).toEqual(exit);
  });

  it('refuses to unpack into the wrong type', () => {
    const any = packAny(containerdEvents.TaskStart, { containerId: 'c1', pid: 1 });
    expect(() => unpackAny(any, containerdEvents.TaskExit)).toThrow(/containerd.events.TaskStart.*containerd.events.TaskExit/);
  });

  it('ignores a host prefix on the type URL', () => {
    expect(typeNameFromUrl('type.googleapis.com/containerd.events.TaskExit')).toBe('containerd.events.TaskExit');
    expect(typeNameFromUrl('containerd.events.TaskExit')).toBe('containerd.events.TaskExit');
    const prefixed: Any = { ...packAny(containerdEvents.TaskExit, exit), typeUrl: 'type.googleapis.com/containerd.events.TaskExit' };
    expect(eventCodecFor(prefixed.typeUrl)).toBe(containerdEvents.TaskExit);
  });

  it('turns a known event into proto3 JSON', () => {
    const any = packAny(containerdEvents.TaskExit, exit);
    expect(decodeEvent(any)).toEqual({ typeName: 'containerd.events.TaskExit', message: exit });
    expect(eventToJSON(any)).toEqual({
      containerId: 'c1',
      id: 'c1',
      pid: 42,
      exitStatus: 137,
      exitedAt: '2023-11-14T22:13:20.123Z',
    });
  });

  it('falls back to the raw Any for unknown types', () => {
    const any: Any = { typeUrl: 'example.Unknown', value: Buffer.from([1, 2]) };
    expect(decodeEvent(any)).toEqual({ typeName: 'example.Unknown', message: undefined });
    expect(eventToJSON(any)).toEqual({ typeUrl: 'example.Unknown', value: 'AQI=' });
    expect(eventCodecFor('toString')).toBeUndefined();
  });
});
