// Hand-computed bytes for the v1 services ctr drives when pulling and running
// images; see wire.spec.ts for why the expectations are literal.
import { containersV1, contentV1, diffV1, goZeroTime, imagesV1, leasesV1, snapshotsV1, taskTypesV1, tasksV1 } from './index';
import { ascii, bytesOf, goZeroSecondsVarint, hex, sampleDate, sampleTimestampBody } from './test-fixtures/bytes';

describe('containerd.services.content.v1', () => {
  it('encodes a COMMIT write request', () => {
    const request = {
      action: contentV1.WriteAction.COMMIT,
      ref: 'r',
      total: 3,
      expected: 'sha256:x',
      offset: 0,
      data: Buffer.from([1, 2, 3]),
      labels: { k: 'v' },
    };
    const bytes = contentV1.WriteContentRequest.encode(request).finish();
    expect(hex(bytes)).toBe(
      bytesOf('08 02', '12 01 72', '18 03', '22 08', ascii('sha256:x'), '32 03 010203', '3a 06 0a016b 120176'),
    );
    expect(contentV1.WriteContentRequest.decode(bytes)).toEqual(request);
  });

  it('encodes a write response with timestamps in fields 2 and 3', () => {
    const bytes = contentV1.WriteContentResponse.encode({
      action: contentV1.WriteAction.WRITE,
      startedAt: new Date(1000),
      updatedAt: new Date(2000),
      offset: 5,
      total: 0,
      digest: 'd',
    }).finish();
    expect(hex(bytes)).toBe(bytesOf('08 01', '12 02 0801', '1a 02 0802', '20 05', '32 01 64'));
  });

  it('carries 64-bit offsets beyond 32 bits', () => {
    const request = { digest: 'd', offset: 2 ** 32, size: 0 };
    const bytes = contentV1.ReadContentRequest.encode(request).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 64', '10 8080808010'));
    expect(contentV1.ReadContentRequest.decode(bytes)).toEqual(request);
  });
});

describe('containerd.services.images.v1', () => {
  it('encodes Image with target in field 3 and timestamps in 7 and 8', () => {
    const image = {
      name: 'n',
      labels: {},
      target: { mediaType: 'm', digest: 'd', size: 3, annotations: { a: 'b' } },
      createdAt: new Date(1000),
      updatedAt: new Date(2000),
    };
    const bytes = imagesV1.Image.encode(image).finish();
    expect(hex(bytes)).toBe(
      bytesOf('0a 01 6e', '1a 10 0a016d 120164 1803 2a06 0a0161 120162', '3a 02 0801', '42 02 0802'),
    );
    expect(imagesV1.Image.decode(bytes)).toEqual(image);
  });

  it('puts sync in field 2 of DeleteImageRequest', () => {
    expect(hex(imagesV1.DeleteImageRequest.encode({ name: 'n', sync: true }).finish())).toBe('0a016e1001');
  });
});

describe('containerd.services.leases.v1', () => {
  it('skips field 2 in CreateRequest', () => {
    const bytes = leasesV1.CreateRequest.encode({ id: 'l', labels: { k: 'v' } }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 6c', '1a 06 0a016b 120176'));
  });

  it('nests Resource in field 2', () => {
    const bytes = leasesV1.AddResourceRequest.encode({ id: 'l', resource: { id: 'x', type: 'content' } }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 6c', '12 0c 0a0178 1207', ascii('content')));
  });
});

describe('containerd.services.snapshots.v1', () => {
  it('encodes Info kind as enum field 3', () => {
    const info = { name: 'n', parent: 'p', kind: snapshotsV1.Kind.COMMITTED, labels: {} };
    const bytes = snapshotsV1.Info.encode(info).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 6e', '12 01 70', '18 03'));
    expect(snapshotsV1.Info.decode(bytes)).toEqual(info);
  });

  it('orders Commit as snapshotter, name, key', () => {
    const bytes = snapshotsV1.CommitSnapshotRequest.encode({ snapshotter: 'native', name: 'n', key: 'k', labels: {} }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 06', ascii('native'), '12 01 6e', '1a 01 6b'));
  });

  it('puts the update mask of UpdateSnapshotRequest in field 3', () => {
    const bytes = snapshotsV1.UpdateSnapshotRequest.encode({
      snapshotter: 's',
      info: { name: 'n', parent: '', kind: snapshotsV1.Kind.UNKNOWN, labels: {} },
      updateMask: ['labels'],
    }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 73', '12 03 0a016e', '1a 08 0a06', ascii('labels')));
  });

  it('encodes Usage size and inodes', () => {
    expect(hex(snapshotsV1.UsageResponse.encode({ size: 4096, inodes: 2 }).finish())).toBe('088020' + '1002');
  });
});

describe('containerd.services.diff.v1', () => {
  it('encodes Apply with payloads map and the 1.7 sync_fs flag', () => {
    const bytes = diffV1.ApplyRequest.encode({
      diff: { mediaType: '', digest: 'd', size: 0, annotations: {} },
      mounts: [{ type: 'bind', source: 's', target: '', options: [] }],
      payloads: { p: { typeUrl: 't', value: Buffer.alloc(0) } },
      syncFs: true,
    }).finish();
    expect(hex(bytes)).toBe(
      bytesOf('0a 03 120164', '12 09 0a04', ascii('bind'), '120173', '1a 08 0a0170 1203 0a0174', '20 01'),
    );
  });

  it('returns the diff descriptor in field 3', () => {
    const bytes = diffV1.DiffResponse.encode({ diff: { mediaType: '', digest: 'd', size: 0, annotations: {} } }).finish();
    expect(hex(bytes)).toBe('1a03120164');
  });
});

describe('containerd.services.containers.v1', () => {
  it('encodes every Container field', () => {
    const container = {
      id: 'c',
      labels: {},
      image: 'i',
      runtime: { name: 'io.containerd.runc.v2', options: undefined },
      spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{}') },
      snapshotter: 'native',
      snapshotKey: 'c',
      createdAt: new Date(1000),
      updatedAt: new Date(1000),
      extensions: { e: { typeUrl: 'x', value: Buffer.alloc(0) } },
      sandbox: 'sb',
    };
    const bytes = containersV1.Container.encode(container).finish();
    expect(hex(bytes)).toBe(
      bytesOf(
        '0a 01 63',
        '1a 01 69',
        '22 17 0a15',
        ascii('io.containerd.runc.v2'),
        '2a 3c 0a36',
        ascii('types.containerd.io/opencontainers/runtime-spec/1/Spec'),
        '1202 7b7d',
        '32 06',
        ascii('native'),
        '3a 01 63',
        '42 02 0801',
        '4a 02 0801',
        '52 08 0a0165 1203 0a0178',
        '5a 02 7362',
      ),
    );
    expect(containersV1.Container.decode(bytes)).toEqual(container);
  });
});

describe('containerd.services.tasks.v1', () => {
  it('encodes CreateTaskRequest, skipping field 2', () => {
    const bytes = tasksV1.CreateTaskRequest.encode({
      containerId: 'c',
      rootfs: [{ type: 'bind', source: 's', target: '', options: [] }],
      stdin: 'i',
      stdout: 'o',
      stderr: '',
      terminal: true,
      options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) },
      runtimePath: 'r',
    }).finish();
    expect(hex(bytes)).toBe(
      bytesOf(
        '0a 01 63',
        '1a 09 0a04',
        ascii('bind'),
        '120173',
        '22 01 69',
        '2a 01 6f',
        '38 01',
        '4a 1c 0a1a',
        ascii('containerd.runc.v1.Options'),
        '52 01 72',
      ),
    );
  });

  it('encodes Process status as a containerd.v1.types.Status enum and Go zero exited_at', () => {
    const process = {
      containerId: 'c',
      id: 'c',
      pid: 10,
      status: taskTypesV1.Status.RUNNING,
      stdin: '',
      stdout: '',
      stderr: '',
      terminal: false,
      exitStatus: 0,
      exitedAt: goZeroTime(),
    };
    const bytes = tasksV1.GetResponse.encode({ process }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 17', '0a0163 120163 180a 2002', '52 0b 08', goZeroSecondsVarint));
    expect(tasksV1.GetResponse.decode(bytes)).toEqual({ process });
  });

  it('encodes Exec with spec in field 6 and exec_id in field 7', () => {
    const bytes = tasksV1.ExecProcessRequest.encode({
      containerId: 'c',
      stdin: '',
      stdout: '',
      stderr: '',
      terminal: true,
      spec: { typeUrl: 't', value: Buffer.from('{}') },
      execId: 'e',
    }).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 01 63', '28 01', '32 07 0a0174 12027b7d', '3a 01 65'));
  });

  it('encodes Kill, Wait, Delete and Metrics', () => {
    expect(hex(tasksV1.KillRequest.encode({ containerId: 'c', execId: '', signal: 9, all: true }).finish())).toBe(
      bytesOf('0a 01 63', '18 09', '20 01'),
    );
    expect(hex(tasksV1.WaitResponse.encode({ exitStatus: 137, exitedAt: sampleDate }).finish())).toBe(
      bytesOf('08 8901', '12 0b', sampleTimestampBody),
    );
    expect(
      hex(tasksV1.DeleteResponse.encode({ id: 'c', pid: 10, exitStatus: 1, exitedAt: new Date(1000) }).finish()),
    ).toBe(bytesOf('0a 01 63', '10 0a', '18 01', '22 02 0801'));
    expect(
      hex(
        tasksV1.MetricsResponse.encode({
          metrics: [{ timestamp: new Date(1000), id: 'c', data: { typeUrl: 't', value: Buffer.alloc(0) } }],
        }).finish(),
      ),
    ).toBe(bytesOf('0a 0c', '0a02 0801', '120163', '1a03 0a0174'));
  });
});
