import { childGcLabels, ingestRefFor, MediaTypes } from './media-types';
import { Limiter } from './limiter';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('GC labels and ingest refs', () => {
  it('numbers children as containerd does: .config once, .l.<i> per layer, .m.<i> per manifest', () => {
    expect(
      childGcLabels([
        { mediaType: MediaTypes.ociConfig, digest: d('c') },
        { mediaType: MediaTypes.ociLayerGzip, digest: d('1') },
        { mediaType: MediaTypes.dockerLayerGzip, digest: d('2') },
      ]),
    ).toEqual({
      'containerd.io/gc.ref.content.config': d('c'),
      'containerd.io/gc.ref.content.l.0': d('1'),
      'containerd.io/gc.ref.content.l.1': d('2'),
    });
    expect(
      childGcLabels([
        { mediaType: MediaTypes.ociManifest, digest: d('a') },
        { mediaType: MediaTypes.dockerManifest, digest: d('b') },
        { mediaType: MediaTypes.ociIndex, digest: d('e') },
      ]),
    ).toEqual({
      'containerd.io/gc.ref.content.m.0': d('a'),
      'containerd.io/gc.ref.content.m.1': d('b'),
      'containerd.io/gc.ref.content.0': d('e'),
    });
  });

  it('names ingests by kind like containerd', () => {
    expect(ingestRefFor(MediaTypes.ociLayerGzip, d('1'))).toBe(`layer-${d('1')}`);
    expect(ingestRefFor(MediaTypes.dockerConfig, d('1'))).toBe(`config-${d('1')}`);
    expect(ingestRefFor(MediaTypes.ociIndex, d('1'))).toBe(`index-${d('1')}`);
    expect(ingestRefFor(MediaTypes.dockerManifest, d('1'))).toBe(`manifest-${d('1')}`);
    expect(ingestRefFor('application/x-other', d('1'))).toBe(`unknown-${d('1')}`);
  });
});

describe('Limiter', () => {
  it('never runs more than its limit at once', async () => {
    const limiter = new Limiter(3);
    let running = 0;
    let peak = 0;
    const task = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    };
    await Promise.all(Array.from({ length: 20 }, () => limiter.run(task)));
    expect(peak).toBe(3);
  });
});
