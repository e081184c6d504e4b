// Hand-computed bytes for what travels between berth and a runtime v2 shim:
// the ttrpc envelope, the containerd.task.v2 messages and runc's options.
import { containerdTypes, goZeroTime, packAny, runcOptionsV1, shimTaskV2, taskTypesV1, ttrpcEnvelope } from './index';
import { ascii, bytesOf, goZeroSecondsVarint, hex, sampleDate, sampleTimestampBody } from './test-fixtures/bytes';

describe('containerd.task.v2', () => {
  it('encodes the 19-byte DeleteResponse a shim prints for an exit 137', () => {
    const response = { pid: 1234, exitStatus: 137, exitedAt: sampleDate };
    const bytes = shimTaskV2.DeleteResponse.encode(response).finish();
    expect(hex(bytes)).toBe(bytesOf('08 d209', '10 8901', '1a 0b', sampleTimestampBody));
    expect(bytes).toHaveLength(19);
    expect(shimTaskV2.DeleteResponse.decode(bytes)).toEqual(response);
  });

  it('decodes a running process state with Go zero exited_at', () => {
    const bytes = Buffer.from(
      bytesOf('0a 01 63', '12 02 2f62', '18 0a', '20 02', '52 0b 08', goZeroSecondsVarint, '5a 01 65'),
      'hex',
    );
    const state = shimTaskV2.StateResponse.decode(bytes);
    expect(state).toMatchObject({ id: 'c', bundle: '/b', pid: 10, status: taskTypesV1.Status.RUNNING, execId: 'e' });
    expect(state.exitedAt?.getTime()).toBe(goZeroTime().getTime());
    expect(hex(shimTaskV2.StateResponse.encode(state).finish())).toBe(hex(bytes));
  });

  it('encodes Create with runc options packed under a bare type URL', () => {
    const options = runcOptionsV1.Options.fromPartial({ binaryName: 'crun', systemdCgroup: true });
    const rootfs: containerdTypes.Mount[] = [];
    const bytes = shimTaskV2.CreateTaskRequest.encode({
      id: 'c',
      bundle: '/b',
      rootfs,
      terminal: true,
      stdin: '/i',
      stdout: '',
      stderr: '',
      checkpoint: '',
      parentCheckpoint: '',
      options: packAny(runcOptionsV1.Options, options),
    }).finish();
    expect(hex(bytes)).toBe(
      bytesOf(
        '0a 01 63',
        '12 02 2f62',
        '20 01',
        '2a 02 2f69',
        '52 26 0a1a',
        ascii('containerd.runc.v1.Options'),
        '12 08 3204',
        ascii('crun'),
        '4801',
      ),
    );
  });

  it('encodes Pids, Connect and Shutdown', () => {
    const pids = shimTaskV2.PidsResponse.encode({
      processes: [{ pid: 5, info: packAny(runcOptionsV1.ProcessDetails, { execId: 'e' }) }],
    }).finish();
    expect(hex(pids)).toBe(
      bytesOf('0a 2c', '08 05', '12 28 0a21', ascii('containerd.runc.v1.ProcessDetails'), '1203 0a0165'),
    );
    expect(hex(shimTaskV2.ConnectResponse.encode({ shimPid: 1, taskPid: 2, version: '2' }).finish())).toBe(
      bytesOf('08 01', '10 02', '1a 01 32'),
    );
    expect(hex(shimTaskV2.ShutdownRequest.encode({ id: 'c', now: true }).finish())).toBe('0a01631001');
  });
});

describe('containerd.runc.v1', () => {
  it('encodes Options by containerd field numbers', () => {
    const options = runcOptionsV1.Options.fromPartial({ ioUid: 1000, ioGid: 1000, root: '/r', criuWorkPath: 'w' });
    expect(hex(runcOptionsV1.Options.encode(options).finish())).toBe(
      bytesOf('20 e807', '28 e807', '3a 02 2f72', '5a 01 77'),
    );
  });

  it('encodes CheckpointOptions', () => {
    const options = runcOptionsV1.CheckpointOptions.fromPartial({ exit: true, emptyNamespaces: ['network'], workPath: 'w' });
    expect(hex(runcOptionsV1.CheckpointOptions.encode(options).finish())).toBe(
      bytesOf('08 01', '32 07', ascii('network'), '4a 01 77'),
    );
  });
});

describe('ttrpc', () => {
  it('encodes a Request with timeout and namespace metadata', () => {
    const request = {
      service: 'containerd.task.v2.Task',
      method: 'Connect',
      payload: Buffer.from('0a0163', 'hex'),
      timeoutNano: 5_000_000_000,
      metadata: [{ key: 'containerd-namespace-ttrpc', value: 'default' }],
    };
    const bytes = ttrpcEnvelope.Request.encode(request).finish();
    expect(hex(bytes)).toBe(
      bytesOf(
        '0a 17',
        ascii('containerd.task.v2.Task'),
        '12 07',
        ascii('Connect'),
        '1a 03 0a0163',
        '20 80e497d012',
        '2a 25 0a1a',
        ascii('containerd-namespace-ttrpc'),
        '1207',
        ascii('default'),
      ),
    );
    expect(ttrpcEnvelope.Request.decode(bytes)).toEqual(request);
  });

  it('leaves status out of a successful Response', () => {
    const ok = ttrpcEnvelope.Response.encode({ status: undefined, payload: Buffer.from([8, 1]) }).finish();
    expect(hex(ok)).toBe('12020801');
    const failed = ttrpcEnvelope.Response.encode({
      status: { code: 5, message: 'm', details: [] },
      payload: Buffer.alloc(0),
    }).finish();
    expect(hex(failed)).toBe(bytesOf('0a 05 0805 12016d'));
  });
});
