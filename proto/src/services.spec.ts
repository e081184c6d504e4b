// Drives the generated grpc-js definitions through a real server and client on
// a unix socket, with the metadata key containerd uses for namespaces.
import * as grpc from '@grpc/grpc-js';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  containerdEvents,
  containersV1,
  contentV1,
  diffV1,
  eventsTtrpcV1,
  eventsV1,
  healthV1,
  imagesV1,
  introspectionV1,
  leasesV1,
  namespacesV1,
  packAny,
  shimTaskV2,
  snapshotsV1,
  tasksV1,
  unpackAny,
  versionV1,
} from './index';

interface GenericDefinition {
  fullName: string;
  methods: Record<string, { name: string; requestStream: boolean; responseStream: boolean }>;
}
type GrpcJsDefinition = Record<string, { path: string; requestStream: boolean; responseStream: boolean }>;

// Full service names and RPC names as containerd 1.6 serves them, in
// declaration order. A typo here would only surface as Unimplemented in ctr.
const services: Array<[GenericDefinition, GrpcJsDefinition, string, string[]]> = [
  [versionV1.VersionDefinition, versionV1.VersionService, 'containerd.services.version.v1.Version', ['Version']],
  [
    namespacesV1.NamespacesDefinition,
    namespacesV1.NamespacesService,
    'containerd.services.namespaces.v1.Namespaces',
    ['Get', 'List', 'Create', 'Update', 'Delete'],
  ],
  [
    introspectionV1.IntrospectionDefinition,
    introspectionV1.IntrospectionService,
    'containerd.services.introspection.v1.Introspection',
    ['Plugins', 'Server'],
  ],
  [eventsV1.EventsDefinition, eventsV1.EventsService, 'containerd.services.events.v1.Events', ['Publish', 'Forward', 'Subscribe']],
  [eventsTtrpcV1.EventsDefinition, eventsTtrpcV1.EventsService, 'containerd.services.events.ttrpc.v1.Events', ['Forward']],
  [
    contentV1.ContentDefinition,
    contentV1.ContentService,
    'containerd.services.content.v1.Content',
    ['Info', 'Update', 'List', 'Delete', 'Read', 'Status', 'ListStatuses', 'Write', 'Abort'],
  ],
  [imagesV1.ImagesDefinition, imagesV1.ImagesService, 'containerd.services.images.v1.Images', ['Get', 'List', 'Create', 'Update', 'Delete']],
  [
    leasesV1.LeasesDefinition,
    leasesV1.LeasesService,
    'containerd.services.leases.v1.Leases',
    ['Create', 'Delete', 'List', 'AddResource', 'DeleteResource', 'ListResources'],
  ],
  [
    snapshotsV1.SnapshotsDefinition,
    snapshotsV1.SnapshotsService,
    'containerd.services.snapshots.v1.Snapshots',
    ['Prepare', 'View', 'Mounts', 'Commit', 'Remove', 'Stat', 'Update', 'List', 'Usage', 'Cleanup'],
  ],
  [diffV1.DiffDefinition, diffV1.DiffService, 'containerd.services.diff.v1.Diff', ['Apply', 'Diff']],
  [
    containersV1.ContainersDefinition,
    containersV1.ContainersService,
    'containerd.services.containers.v1.Containers',
    ['Get', 'List', 'ListStream', 'Create', 'Update', 'Delete'],
  ],
  [
    tasksV1.TasksDefinition,
    tasksV1.TasksService,
    'containerd.services.tasks.v1.Tasks',
    ['Create', 'Start', 'Delete', 'DeleteProcess', 'Get', 'List', 'Kill', 'Exec', 'ResizePty', 'CloseIO', 'Pause', 'Resume', 'ListPids', 'Checkpoint', 'Update', 'Metrics', 'Wait'],
  ],
  [
    shimTaskV2.TaskDefinition,
    shimTaskV2.TaskService,
    'containerd.task.v2.Task',
    ['State', 'Create', 'Start', 'Delete', 'Pids', 'Pause', 'Resume', 'Checkpoint', 'Kill', 'Exec', 'ResizePty', 'CloseIO', 'Update', 'Wait', 'Stats', 'Connect', 'Shutdown'],
  ],
  [healthV1.HealthDefinition, healthV1.HealthService, 'grpc.health.v1.Health', ['Check', 'Watch']],
];

describe.each(services)('service %#', (definition, grpcJs, fullName, methodNames) => {
  it(`is ${fullName} with the expected RPCs`, () => {
    expect(definition.fullName).toBe(fullName);
    expect(Object.values(definition.methods).map((method) => method.name)).toEqual(methodNames);
    // Matched by path: ts-proto camel-cases keys differently in the two outputs
    // (generic `closeIO`, grpc-js `closeIo`).
    const grpcJsByPath = new Map(Object.values(grpcJs).map((method) => [method.path, method]));
    expect(grpcJsByPath.size).toBe(methodNames.length);
    for (const method of Object.values(definition.methods)) {
      expect(grpcJsByPath.get(`/${fullName}/${method.name}`)).toMatchObject({
        requestStream: method.requestStream,
        responseStream: method.responseStream,
      });
    }
  });
});

describe('streaming RPCs', () => {
  it('match containerd', () => {
    const streaming = services.flatMap(([definition]) =>
      Object.values(definition.methods)
        .filter((method) => method.requestStream || method.responseStream)
        .map((method) => `${definition.fullName}/${method.name} ${method.requestStream ? 'bidi' : 'server'}`),
    );
    expect(streaming).toEqual([
      'containerd.services.events.v1.Events/Subscribe server',
      'containerd.services.content.v1.Content/List server',
      'containerd.services.content.v1.Content/Read server',
      'containerd.services.content.v1.Content/Write bidi',
      'containerd.services.snapshots.v1.Snapshots/List server',
      'containerd.services.containers.v1.Containers/ListStream server',
      'grpc.health.v1.Health/Watch server',
    ]);
  });
});

describe('grpc-js service definitions', () => {
  it('use containerd service paths', () => {
    expect(versionV1.VersionService.version.path).toBe('/containerd.services.version.v1.Version/Version');
    expect(namespacesV1.NamespacesService.update.path).toBe('/containerd.services.namespaces.v1.Namespaces/Update');
    expect(introspectionV1.IntrospectionService.plugins.path).toBe(
      '/containerd.services.introspection.v1.Introspection/Plugins',
    );
    expect(eventsV1.EventsService.subscribe).toMatchObject({
      path: '/containerd.services.events.v1.Events/Subscribe',
      responseStream: true,
    });
    expect(healthV1.HealthService.watch.path).toBe('/grpc.health.v1.Health/Watch');
    expect(namespacesV1.NamespacesDefinition.fullName).toBe('containerd.services.namespaces.v1.Namespaces');
    expect(namespacesV1.NamespacesDefinition.methods.get.name).toBe('Get');
  });
});

describe('generated client and server', () => {
  let tempDir: string;
  let server: grpc.Server;
  let address: string;
  const seenNamespaces: string[] = [];

  beforeAll(async () => {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-proto-grpc-'));
    address = `unix://${path.join(tempDir, 'berth.sock')}`;
    server = new grpc.Server();
    const namespaces: namespacesV1.NamespacesServer = {
      get: (call, callback) => {
        seenNamespaces.push(String(call.metadata.get('containerd-namespace')[0]));
        callback(null, { namespace: { name: call.request.name, labels: { 'containerd.io/defaults/snapshotter': 'native' } } });
      },
      list: (_call, callback) => callback(null, { namespaces: [] }),
      create: (call, callback) => callback(null, { namespace: call.request.namespace }),
      update: (call, callback) => callback(null, { namespace: call.request.namespace }),
      delete: (_call, callback) => callback({ code: grpc.status.FAILED_PRECONDITION, details: 'namespace not empty' }),
    };
    const events: eventsV1.EventsServer = {
      publish: (_call, callback) => callback(null, {}),
      forward: (_call, callback) => callback(null, {}),
      subscribe: (call) => {
        call.write({
          timestamp: new Date(0),
          namespace: 'default',
          topic: '/tasks/start',
          event: packAny(containerdEvents.TaskStart, { containerId: 'c1', pid: 9 }),
        });
        call.end();
      },
    };
    server.addService(namespacesV1.NamespacesService, namespaces);
    server.addService(eventsV1.EventsService, events);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())),
    );
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    fs.rmSync(tempDir, { recursive: true, force: true });
  });

  it('makes unary calls with namespace metadata', async () => {
    const client = new namespacesV1.NamespacesClient(address, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('containerd-namespace', 'k8s.io');
    try {
      const response = await new Promise<namespacesV1.GetNamespaceResponse>((resolve, reject) =>
        client.get({ name: 'k8s.io' }, metadata, (error, value) => (error ? reject(error) : resolve(value))),
      );
      expect(response.namespace).toEqual({ name: 'k8s.io', labels: { 'containerd.io/defaults/snapshotter': 'native' } });
      expect(seenNamespaces).toEqual(['k8s.io']);

      const failure = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.delete({ name: 'k8s.io' }, (error) => resolve(error)),
      );
      expect(failure).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'namespace not empty' });
    } finally {
      client.close();
    }
  });

  it('streams envelopes from Subscribe', async () => {
    const client = new eventsV1.EventsClient(address, grpc.credentials.createInsecure());
    try {
      const envelopes: eventsV1.Envelope[] = [];
      const stream = client.subscribe({ filters: ['topic~="/tasks/"'] });
      stream.on('data', (envelope: eventsV1.Envelope) => envelopes.push(envelope));
      await new Promise<void>((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      expect(envelopes).toHaveLength(1);
      expect(envelopes[0]).toMatchObject({ namespace: 'default', topic: '/tasks/start', timestamp: new Date(0) });
      const event = envelopes[0].event;
      expect(event && unpackAny(event, containerdEvents.TaskStart)).toEqual({ containerId: 'c1', pid: 9 });
    } finally {
      client.close();
    }
  });
});
