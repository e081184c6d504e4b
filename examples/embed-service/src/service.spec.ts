import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startEmbedService, RunningService } from './service';

describe('embed-service: berth in-process behind HTTP', () => {
  let dir: string;
  let svc: RunningService;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-embed-'));
    svc = await startEmbedService({ root: path.join(dir, 'root'), state: path.join(dir, 'state') });
  });

  afterAll(async () => {
    await svc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers GET /namespaces with what the embedded store holds', async () => {
    const empty = await (await fetch(`${svc.url}/namespaces`)).json();
    expect(empty).toEqual({ namespaces: [] });

    const created = await fetch(`${svc.url}/namespaces`, {
      method: 'POST',
      body: JSON.stringify({ name: 'web', labels: { team: 'a' } }),
    });
    expect(created.status).toBe(201);

    const res = await fetch(`${svc.url}/namespaces`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ namespaces: [{ name: 'web', labels: { team: 'a' } }] });
  });

  it('maps berth error kinds to HTTP statuses', async () => {
    const bad = await fetch(`${svc.url}/namespaces`, { method: 'POST', body: JSON.stringify({ name: '../x' }) });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toContain('../x');
    const dup = await fetch(`${svc.url}/namespaces`, { method: 'POST', body: JSON.stringify({ name: 'web' }) });
    expect(dup.status).toBe(409);
  });

  it('refuses a POST /run without an image or with bad args, before running anything', async () => {
    const post = (body: unknown) => fetch(`${svc.url}/run`, { method: 'POST', body: JSON.stringify(body) });
    const noImage = await post({ args: ['true'] });
    expect(noImage.status).toBe(400);
    expect((await noImage.json()).error).toMatch(/image/);
    const badArgs = await post({ image: 'example.invalid/x:1', args: 'echo hi' });
    expect(badArgs.status).toBe(400);
    expect((await badArgs.json()).error).toMatch(/args/);
    const badJson = await fetch(`${svc.url}/run`, { method: 'POST', body: '{' });
    expect(badJson.status).toBe(400);
    expect(await svc.berth.containers.list()).toEqual([]);
  });
});
