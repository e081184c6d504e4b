import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AbortedError,
  AlreadyExistsError,
  BerthError,
  CanceledError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  errorKind,
} from '@berth/core';
import { containerdEvents, eventsTtrpcV1, packAny, shimTaskV2, taskTypesV1, ttrpcEnvelope } from '@berth/proto';
import {
  FrameDecoder,
  FrameType,
  MAX_FRAME_DATA_LENGTH,
  TtrpcCallContext,
  TtrpcConnection,
  TtrpcServer,
  TtrpcServiceImpl,
  encodeFrame,
} from './index';

type TaskDefinition = typeof shimTaskV2.TaskDefinition;
const Task = shimTaskV2.TaskDefinition;

/** Every Task method answering NotImplemented, as a shim does for what it lacks. */
function unimplementedTask(): TtrpcServiceImpl<TaskDefinition> {
  const impl: Record<string, () => Promise<never>> = {};
  for (const [key, method] of Object.entries(Task.methods)) {
    impl[key] = async () => {
      throw new NotImplementedError(`${method.name} not implemented`);
    };
  }
  return impl as unknown as TtrpcServiceImpl<TaskDefinition>;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `signal` aborts, with its reason. */
const aborted = (signal: AbortSignal) =>
  new Promise<unknown>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));

/** Raw frames to and from a socket, for tests below the client. */
function rawPeer(socket: net.Socket) {
  const decoder = new FrameDecoder();
  const responses: ttrpcEnvelope.Response[] & { streamIds?: number[] } = [];
  const streamIds: number[] = [];
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk) => {
    for (const d of decoder.push(chunk)) {
      if (d.kind !== 'frame') continue;
      responses.push(ttrpcEnvelope.Response.decode(d.frame.data));
      streamIds.push(d.frame.streamId);
    }
    waiters.splice(0).forEach((w) => w());
  });
  return {
    responses,
    streamIds,
    async waitFor(count: number) {
      while (responses.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}

function requestFrame(streamId: number, request: Partial<ttrpcEnvelope.Request>): Buffer {
  const data = ttrpcEnvelope.Request.encode(ttrpcEnvelope.Request.fromPartial(request)).finish();
  return encodeFrame({ streamId, type: FrameType.Request, flags: 0 }, data);
}

describe('ttrpc client and server', () => {
  let dir: string;
  let socketPath: string;
  let server: TtrpcServer;
  let task: TtrpcServiceImpl<TaskDefinition>;
  let forwarded: { request: eventsTtrpcV1.ForwardRequest; context: TtrpcCallContext }[];
  const connections: TtrpcConnection[] = [];
  const rawSockets: net.Socket[] = [];

  async function connect(): Promise<TtrpcConnection> {
    const connection = await TtrpcConnection.connect(socketPath);
    connections.push(connection);
    return connection;
  }

  async function rawConnect(): Promise<net.Socket> {
    const socket = net.createConnection({ path: socketPath });
    rawSockets.push(socket);
    await new Promise((resolve) => socket.once('connect', resolve));
    return socket;
  }

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ttrpc-'));
    socketPath = path.join(dir, 'ttrpc.sock');
    forwarded = [];
    // Handlers delegate to `task`, so each test can swap in its own behaviour.
    task = unimplementedTask();
    const delegating = {} as Record<string, unknown>;
    for (const key of Object.keys(Task.methods)) {
      delegating[key] = (request: unknown, context: TtrpcCallContext) =>
        (task as unknown as Record<string, (r: unknown, c: TtrpcCallContext) => Promise<unknown>>)[key](request, context);
    }
    server = new TtrpcServer();
    server.register(Task, delegating as TtrpcServiceImpl<TaskDefinition>);
    server.register(eventsTtrpcV1.EventsDefinition, {
      forward: async (request, context) => {
        forwarded.push({ request, context });
        return {};
      },
    });
    await server.listen(socketPath);
  });

  afterEach(async () => {
    for (const c of connections.splice(0)) c.close();
    for (const s of rawSockets.splice(0)) s.destroy();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips unary Task calls with the generated shim codecs', async () => {
    const received: shimTaskV2.CreateTaskRequest[] = [];
    task.create = async (request) => {
      received.push(request);
      return { pid: 4242 };
    };
    task.state = async (request) => ({
      id: request.id,
      execId: request.execId,
      pid: 7,
      status: taskTypesV1.Status.RUNNING,
      exitedAt: new Date('2024-01-02T03:04:05Z'),
      terminal: true,
    });
    const client = (await connect()).client(Task);

    const created = await client.create({
      id: 'c1',
      bundle: '/run/bundle/c1',
      rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a', 'upperdir=/b'] }],
      stdout: '/fifo/out',
    });
    expect(created).toEqual({ pid: 4242 });
    expect(received[0]).toMatchObject({
      id: 'c1',
      bundle: '/run/bundle/c1',
      rootfs: [{ type: 'overlay', source: 'overlay', target: '', options: ['lowerdir=/a', 'upperdir=/b'] }],
      stdout: '/fifo/out',
      terminal: false,
    });

    const state = await client.state({ id: 'c1', execId: 'e1' });
    expect(state).toMatchObject({ id: 'c1', execId: 'e1', pid: 7, status: taskTypesV1.Status.RUNNING, terminal: true });
    expect(state.exitedAt?.toISOString()).toBe('2024-01-02T03:04:05.000Z');
  });

  it('round-trips Events.Forward with a packed event', async () => {
    const events = (await connect()).client(eventsTtrpcV1.EventsDefinition);
    const event = packAny(containerdEvents.TaskOOM, { containerId: 'c9' });
    await expect(
      events.forward({ envelope: { namespace: 'ns1', topic: '/tasks/oom', timestamp: new Date(1000), event } }),
    ).resolves.toEqual({});
    const envelope = forwarded[0].request.envelope;
    expect(envelope).toMatchObject({ namespace: 'ns1', topic: '/tasks/oom', timestamp: new Date(1000) });
    expect(envelope?.event?.typeUrl).toBe('containerd.events.TaskOOM');
    expect(containerdEvents.TaskOOM.decode(envelope!.event!.value)).toEqual({ containerId: 'c9' });
  });

  it('sends metadata lower-cased, repeated keys as several values, call metadata over defaults', async () => {
    const events = (await connect()).client(eventsTtrpcV1.EventsDefinition, {
      metadata: { 'Containerd-Namespace-Ttrpc': 'default-ns', 'X-Kept': 'kept' },
    });
    await events.forward({}, { metadata: { 'containerd-namespace-ttrpc': 'call-ns', 'X-Multi': ['a', 'b', 'c'] } });
    await events.forward({});
    expect(forwarded[0].context.metadata).toEqual(
      new Map([
        ['containerd-namespace-ttrpc', ['call-ns']],
        ['x-kept', ['kept']],
        ['x-multi', ['a', 'b', 'c']],
      ]),
    );
    expect(forwarded[1].context.metadata).toEqual(
      new Map([
        ['containerd-namespace-ttrpc', ['default-ns']],
        ['x-kept', ['kept']],
      ]),
    );
    expect(forwarded[1].context.deadline).toBeUndefined();
  });

  it('keeps many calls in flight on one connection and matches out-of-order answers', async () => {
    const finished: string[] = [];
    const held = new Map<number, () => void>();
    let allArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (allArrived = resolve));
    task.start = async (request) => {
      const n = Number(request.id);
      await new Promise<void>((resolve) => {
        held.set(n, resolve);
        if (held.size === 20) allArrived();
      });
      finished.push(request.id);
      return { pid: 1000 + n };
    };
    const client = (await connect()).client(Task);
    const calls = Promise.all(Array.from({ length: 20 }, (_, n) => client.start({ id: String(n) })));
    // Every call is in flight at once; the server then answers the last one first.
    await arrived;
    for (let n = 19; n >= 0; n--) held.get(n)!();
    const results = await calls;
    expect(results.map((r) => r.pid)).toEqual(Array.from({ length: 20 }, (_, n) => 1000 + n));
    expect(finished[0]).toBe('19');
    expect(finished[19]).toBe('0');
  });

  it('carries every error kind back as the same core error class and message', async () => {
    const classes = [
      InvalidArgumentError,
      NotFoundError,
      AlreadyExistsError,
      FailedPreconditionError,
      UnavailableError,
      NotImplementedError,
      CanceledError,
      DeadlineExceededError,
      AbortedError,
      OutOfRangeError,
      ResourceExhaustedError,
      PermissionDeniedError,
      UnauthenticatedError,
      DataLossError,
      InternalError,
    ];
    let toThrow: Error = new Error('unset');
    task.kill = async () => {
      throw toThrow;
    };
    const client = (await connect()).client(Task);
    for (const ErrorClass of classes) {
      toThrow = new ErrorClass(`kill failed: ${ErrorClass.name}`);
      const err = await client.kill({ id: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ErrorClass);
      expect(errorKind(err)).toBe(errorKind(toThrow));
      expect((err as Error).message).toBe(`kill failed: ${ErrorClass.name}`);
    }
    toThrow = new Error('plain failure');
    const err = await client.kill({ id: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BerthError);
    expect(errorKind(err)).toBe('unknown');
    expect((err as Error).message).toBe('plain failure');
  });

  it('answers unknown services and methods with Unimplemented naming them', async () => {
    const connection = await connect();
    const unknownService = await connection.call('nope.v1.Nope', 'Do', new Uint8Array()).catch((e: unknown) => e);
    expect(unknownService).toBeInstanceOf(NotImplementedError);
    expect((unknownService as Error).message).toBe('service nope.v1.Nope');
    const unknownMethod = await connection.call(Task.fullName, 'Explode', new Uint8Array()).catch((e: unknown) => e);
    expect(unknownMethod).toBeInstanceOf(NotImplementedError);
    expect((unknownMethod as Error).message).toBe('method Explode');

    const raw = rawPeer(await rawConnect());
    rawSockets[0].write(requestFrame(1, { service: 'nope.v1.Nope', method: 'Do' }));
    await raw.waitFor(1);
    expect(raw.responses[0].status).toEqual({ code: 12, message: 'service nope.v1.Nope', details: [] });
  });

  it('times a call out on both sides: DeadlineExceeded for the caller, an aborted signal for the handler', async () => {
    const seen: { deadline?: number; reason?: unknown }[] = [];
    task.wait = async (_request, context) => {
      const entry: { deadline?: number; reason?: unknown } = { deadline: context.deadline };
      seen.push(entry);
      entry.reason = await aborted(context.signal);
      return { exitStatus: 1 };
    };
    const client = (await connect()).client(Task);
    const started = Date.now();
    const err = await client.wait({ id: 'x' }, { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await delay(50);
    expect(seen[0].deadline).toBeGreaterThanOrEqual(started + 100);
    expect(seen[0].deadline).toBeLessThanOrEqual(started + 400);
    expect(seen[0].reason).toBeInstanceOf(DeadlineExceededError);
    // The connection stays usable after a timeout.
    task.pids = async () => ({ processes: [{ pid: 5 }] });
    await expect(client.pids({ id: 'x' })).resolves.toEqual({ processes: [{ pid: 5 }] });
  });

  it('fails a call with CanceledError when its signal aborts', async () => {
    task.wait = (_request, context) => aborted(context.signal).then(() => ({}));
    const client = (await connect()).client(Task);
    const controller = new AbortController();
    const pending = client.wait({ id: 'x' }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toBeInstanceOf(CanceledError);
  });

  it('refuses to send a request over 4 MiB and keeps the connection', async () => {
    task.update = async () => ({});
    const client = (await connect()).client(Task);
    const huge = { id: 'x', annotations: { big: 'x'.repeat(MAX_FRAME_DATA_LENGTH) } };
    await expect(client.update(huge)).rejects.toBeInstanceOf(ResourceExhaustedError);
    await expect(client.update({ id: 'x' })).resolves.toEqual({});
  });

  it('answers a response over 4 MiB with ResourceExhausted', async () => {
    task.state = async () => ({ id: 'y'.repeat(MAX_FRAME_DATA_LENGTH) });
    const client = (await connect()).client(Task);
    await expect(client.state({ id: 'x' })).rejects.toBeInstanceOf(ResourceExhaustedError);
  });

  it('discards an oversized request frame, answers it with code 8, and serves the next one', async () => {
    const socket = await rawConnect();
    const raw = rawPeer(socket);
    const length = MAX_FRAME_DATA_LENGTH + 1;
    const header = Buffer.alloc(10);
    header.writeUInt32BE(length, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(FrameType.Request, 8);
    socket.write(header);
    socket.write(Buffer.alloc(length, 0x5a));
    socket.write(requestFrame(3, { service: eventsTtrpcV1.EventsDefinition.fullName, method: 'Forward' }));
    await raw.waitFor(2);
    expect(raw.streamIds).toEqual([1, 3]);
    expect(raw.responses[0].status?.code).toBe(8);
    expect(raw.responses[1].status).toBeUndefined();
    expect(forwarded).toHaveLength(1);
  });

  it('rejects even and reused stream ids with InvalidArgument', async () => {
    const socket = await rawConnect();
    const raw = rawPeer(socket);
    const forward = { service: eventsTtrpcV1.EventsDefinition.fullName, method: 'Forward' };
    socket.write(Buffer.concat([requestFrame(2, forward), requestFrame(5, forward), requestFrame(3, forward)]));
    await raw.waitFor(3);
    const byStream = new Map(raw.streamIds.map((id, i) => [id, raw.responses[i].status?.code]));
    expect(byStream).toEqual(new Map([[2, 3], [5, undefined], [3, 3]]));
  });

  it('rejects pending calls with UnavailableError when the server closes, and aborts their handlers', async () => {
    const reasons: unknown[] = [];
    task.wait = async (_request, context) => {
      reasons.push(await aborted(context.signal));
      return {};
    };
    const connection = await connect();
    const client = connection.client(Task);
    const pending = [client.wait({ id: 'a' }), client.wait({ id: 'b' })].map((call) => call.catch((e: unknown) => e));
    await delay(30);
    await server.close();
    for (const err of await Promise.all(pending)) {
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toMatch(/ttrpc connection closed/);
    }
    await connection.closed;
    expect(reasons).toHaveLength(2);
    expect(reasons[0]).toBeInstanceOf(CanceledError);
    expect(fs.existsSync(socketPath)).toBe(false);
    await expect(client.wait({ id: 'c' })).rejects.toBeInstanceOf(UnavailableError);
  });

  it('resolves `closed` and fails later calls after close()', async () => {
    const connection = await connect();
    connection.close();
    await connection.closed;
    await expect(connection.client(Task).state({ id: 'x' })).rejects.toThrow(/ttrpc connection closed/);
  });

  it('server decodes a request written one byte at a time, and many requests in one chunk', async () => {
    const socket = await rawConnect();
    const raw = rawPeer(socket);
    const envelope = { namespace: 'bytes', topic: '/t' };
    const frame = requestFrame(1, {
      service: eventsTtrpcV1.EventsDefinition.fullName,
      method: 'Forward',
      payload: Buffer.from(eventsTtrpcV1.ForwardRequest.encode({ envelope: { ...envelope, timestamp: undefined } }).finish()),
      metadata: [{ key: 'k', value: 'v' }],
    });
    for (const byte of frame) {
      await new Promise<void>((resolve) => socket.write(Buffer.of(byte), () => resolve()));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await raw.waitFor(1);
    expect(raw.responses[0].status).toBeUndefined();
    expect(forwarded[0].request.envelope).toMatchObject(envelope);
    expect(forwarded[0].context.metadata.get('k')).toEqual(['v']);

    const many = Array.from({ length: 50 }, (_, i) =>
      requestFrame(3 + 2 * i, { service: eventsTtrpcV1.EventsDefinition.fullName, method: 'Forward' }),
    );
    socket.write(Buffer.concat(many));
    await raw.waitFor(51);
    expect(raw.streamIds.slice(1).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 3 + 2 * i));
    expect(forwarded).toHaveLength(51);
  });

  it('client decodes responses written one byte at a time, and many responses in one chunk', async () => {
    // A hand-written server: collects 5 requests, then answers them in one chunk
    // in reverse order, except the first, which it trickles out byte by byte.
    const rawPath = path.join(dir, 'raw.sock');
    const rawServer = net.createServer((socket) => {
      const decoder = new FrameDecoder();
      const requests: { streamId: number; request: ttrpcEnvelope.Request }[] = [];
      socket.on('data', async (chunk) => {
        for (const d of decoder.push(chunk)) {
          if (d.kind === 'frame') requests.push({ streamId: d.frame.streamId, request: ttrpcEnvelope.Request.decode(d.frame.data) });
        }
        if (requests.length !== 5) return;
        const answer = ({ streamId, request }: (typeof requests)[number]) => {
          const { id } = shimTaskV2.ConnectRequest.decode(request.payload);
          const payload = Buffer.from(shimTaskV2.ConnectResponse.encode({ shimPid: Number(id), taskPid: 0, version: id }).finish());
          return encodeFrame({ streamId, type: FrameType.Response, flags: 0 }, ttrpcEnvelope.Response.encode({ payload }).finish());
        };
        const [first, ...rest] = requests;
        socket.write(Buffer.concat(rest.reverse().map(answer)));
        for (const byte of answer(first)) {
          socket.write(Buffer.of(byte));
          await new Promise((resolve) => setImmediate(resolve));
        }
      });
    });
    await new Promise<void>((resolve) => rawServer.listen(rawPath, resolve));
    try {
      const connection = await TtrpcConnection.connect(`unix://${rawPath}`);
      connections.push(connection);
      const client = connection.client(Task);
      const results = await Promise.all([1, 2, 3, 4, 5].map((n) => client.connect({ id: String(n) })));
      expect(results.map((r) => [r.shimPid, r.version])).toEqual([1, 2, 3, 4, 5].map((n) => [n, String(n)]));
    } finally {
      for (const c of connections.splice(0)) c.close();
      await new Promise((resolve) => rawServer.close(resolve));
    }
  });

  it('listen removes a stale socket file and refuses a live one', async () => {
    const other = new TtrpcServer();
    await expect(other.listen(socketPath)).rejects.toBeInstanceOf(AlreadyExistsError);

    const stalePath = path.join(dir, 'stale.sock');
    // A server that dies without closing leaves its socket file behind.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(fs.existsSync(stalePath)).toBe(true);

    await other.listen(`unix://${stalePath}`);
    const connection = await TtrpcConnection.connect(stalePath);
    await expect(connection.client(eventsTtrpcV1.EventsDefinition).forward({})).rejects.toThrow(
      'service containerd.services.events.ttrpc.v1.Events',
    );
    connection.close();
    await other.close();
    expect(fs.existsSync(stalePath)).toBe(false);
  });

  it('connect fails with UnavailableError when nothing listens', async () => {
    await expect(TtrpcConnection.connect(path.join(dir, 'absent.sock'))).rejects.toBeInstanceOf(UnavailableError);
  });

  it('connect succeeds when the event loop was busy past the deadline (a loaded daemon)', async () => {
    const connecting = TtrpcConnection.connect(socketPath, { timeoutMs: 50 });
    const busyUntil = Date.now() + 150;
    while (Date.now() < busyUntil) {
      // the kernel completes the connect meanwhile; its callback waits behind the expired timer
    }
    const connection = await connecting;
    connections.push(connection);
    await expect(connection.client(eventsTtrpcV1.EventsDefinition).forward({ envelope: { topic: '/x' } })).resolves.toEqual({});
  });
});
