// Expected bytes are worked out by hand from containerd's field numbers, so a
// renumbered or retyped field in our .proto files fails here, not against ctr.
import {
  Any,
  Timestamp,
  containerdEvents,
  eventsTtrpcV1,
  eventsV1,
  goZeroTime,
  healthV1,
  introspectionV1,
  namespacesV1,
  packAny,
  rpcStatus,
  versionV1,
} from './index';
import { ascii, bytesOf, goZeroSecondsVarint, hex, sampleDate, sampleTimestampBody } from './test-fixtures/bytes';

describe('containerd.services.version.v1', () => {
  it('puts version in field 1 and revision in field 2', () => {
    const bytes = versionV1.VersionResponse.encode({ version: 'v', revision: 'r' }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 76 12 01 72'));
  });
});

describe('containerd.services.namespaces.v1', () => {
  it('encodes Namespace name as field 1 and labels as a field 2 map', () => {
    const namespace = { name: 'a', labels: { k: 'v' } };
    const bytes = namespacesV1.Namespace.encode(namespace).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 61', '12 06 0a01 6b 1201 76'));
    expect(namespacesV1.Namespace.decode(bytes)).toEqual(namespace);
  });

  it('carries update_mask as a FieldMask in field 2', () => {
    const request = { namespace: { name: 'a', labels: {} }, updateMask: ['labels.c'] };
    const bytes = namespacesV1.UpdateNamespaceRequest.encode(request).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 03 0a0161', '12 0a 0a 08', ascii('labels.c')));
    expect(namespacesV1.UpdateNamespaceRequest.decode(bytes)).toEqual(request);
  });
});

describe('containerd.services.introspection.v1', () => {
  it('encodes every Plugin field, init_err as a google.rpc.Status', () => {
    const plugin: introspectionV1.Plugin = {
      type: 't',
      id: 'i',
      requires: ['r'],
      platforms: [{ os: 'linux', architecture: 'amd64', variant: '' }],
      exports: { k: 'v' },
      capabilities: ['c'],
      initErr: { code: 9, message: 'skip', details: [] },
    };
    const bytes = introspectionV1.Plugin.encode(plugin).finish();
    expect(hex(bytes)).toBe(
      bytesOf(
        '0a 01 74',
        '12 01 69',
        '1a 01 72',
        '22 0e 0a 05',
        ascii('linux'),
        '12 05',
        ascii('amd64'),
        '2a 06 0a016b 120176',
        '32 01 63',
        '3a 08 08 09 12 04',
        ascii('skip'),
      ),
    );
    expect(introspectionV1.Plugin.decode(bytes)).toEqual(plugin);
  });

  it('keeps uuid in field 1 and the 1.7 additions after it', () => {
    const onlyUuid = introspectionV1.ServerResponse.encode({ uuid: 'u', pid: 0, pidns: 0, deprecations: [] }).finish();
    expect(hex(onlyUuid)).toBe(bytesOf('0a 01 75'));

    const withPid = introspectionV1.ServerResponse.encode({
      uuid: 'u',
      pid: 42,
      pidns: 4026531836,
      deprecations: [{ id: 'd', message: 'm', lastOccurrence: undefined }],
    }).finish();
    expect(hex(withPid)).toBe(bytesOf('0a 01 75', '10 2a', '18 fcffffff0e', '22 06 0a0164 12016d'));
  });
});

describe('containerd.services.events', () => {
  const event = packAny(containerdEvents.NamespaceCreate, { name: 'a', labels: {} });
  const envelope = { timestamp: sampleDate, namespace: 'default', topic: '/x', event };
  const envelopeBytes = bytesOf(
    '0a 0b',
    sampleTimestampBody,
    '12 07',
    ascii('default'),
    '1a 02 2f78',
    // Any: bare type URL (33 bytes) in field 1, the NamespaceCreate in field 2.
    '22 28 0a 21',
    ascii('containerd.events.NamespaceCreate'),
    '12 03 0a0161',
  );

  it('encodes Envelope with a bare-type-URL Any', () => {
    expect(event.typeUrl).toBe('containerd.events.NamespaceCreate');
    const bytes = eventsV1.Envelope.encode(envelope).finish();
    expect(hex(bytes)).toBe(envelopeBytes);
    expect(eventsV1.Envelope.decode(bytes)).toEqual(envelope);
  });

  it('gives the ttrpc Envelope the same wire shape', () => {
    expect(hex(eventsTtrpcV1.Envelope.encode(envelope).finish())).toBe(envelopeBytes);
    const forward = eventsTtrpcV1.ForwardRequest.encode({ envelope }).finish();
    // 13 (timestamp) + 9 (namespace) + 4 (topic) + 42 (event) = 68 bytes.
    expect(hex(forward)).toBe(bytesOf('0a 44', envelopeBytes));
  });

  it('puts Publish topic in field 1 and the event in field 2', () => {
    const bytes = eventsV1.PublishRequest.encode({ topic: '/x', event: { typeUrl: 't', value: Buffer.from([1]) } }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 02 2f78', '12 06 0a0174 120101'));
  });
});

describe('containerd.events', () => {
  it('encodes TaskExit with exited_at in field 5', () => {
    const exit = { containerId: 'c', id: 'c', pid: 42, exitStatus: 137, exitedAt: sampleDate };
    const bytes = containerdEvents.TaskExit.encode(exit).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 63', '12 01 63', '18 2a', '20 8901', '2a 0b', sampleTimestampBody));
    expect(containerdEvents.TaskExit.decode(bytes)).toEqual(exit);
  });

  it('round-trips Go zero time (negative seconds) in exited_at', () => {
    const exit = { containerId: 'c', id: 'c', pid: 1, exitStatus: 0, exitedAt: goZeroTime() };
    const bytes = containerdEvents.TaskExit.encode(exit).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 63', '12 01 63', '18 01', '2a 0b 08', goZeroSecondsVarint));
    const decoded = containerdEvents.TaskExit.decode(bytes);
    expect(decoded.exitedAt?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
  });

  it('encodes TaskCreate rootfs as containerd.types.Mount and io as TaskIO', () => {
    const bytes = containerdEvents.TaskCreate.encode({
      containerId: 'c',
      bundle: 'b',
      rootfs: [{ type: 'bind', source: 's', target: '', options: ['ro'] }],
      io: { stdin: '', stdout: 'o', stderr: '', terminal: true },
      checkpoint: '',
      pid: 7,
    }).finish();
    expect(hex(bytes)).toBe(
      bytesOf('0a 01 63', '12 01 62', '1a 0d 0a 04', ascii('bind'), '12 01 73', '22 02 726f', '22 05 12 01 6f 20 01', '30 07'),
    );
  });
});

describe('google.protobuf.Timestamp', () => {
  it('decodes seconds = -62135596800 as written by Go', () => {
    const bytes = Buffer.from(bytesOf('08', goZeroSecondsVarint), 'hex');
    const timestamp = Timestamp.decode(bytes);
    expect(timestamp).toEqual({ seconds: -62135596800, nanos: 0 });
    expect(hex(Timestamp.encode(timestamp).finish())).toBe(bytesOf('08', goZeroSecondsVarint));
  });
});

describe('google.rpc.Status and grpc.health.v1', () => {
  it('encodes Status code 1, message 2, details 3', () => {
    const status = { code: 5, message: 'x', details: [{ typeUrl: 't', value: Buffer.from([1]) }] };
    const bytes = rpcStatus.Status.encode(status).finish();
    expect(hex(bytes)).toBe(bytesOf('08 05', '12 01 78', '1a 06 0a0174 120101'));
    expect(rpcStatus.Status.decode(bytes)).toEqual(status);
  });

  it('encodes HealthCheckResponse status as enum field 1', () => {
    const bytes = healthV1.HealthCheckResponse.encode({
      status: healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING,
    }).finish();
    expect(hex(bytes)).toBe('0802');
    expect(hex(healthV1.HealthCheckRequest.encode({ service: 'a' }).finish())).toBe('0a0161');
  });

  it('decodes an Any with its value as a Buffer', () => {
    const decoded = Any.decode(Buffer.from('0a01741201ff', 'hex'));
    expect(decoded.typeUrl).toBe('t');
    expect(hex(decoded.value)).toBe('ff');
  });
});
