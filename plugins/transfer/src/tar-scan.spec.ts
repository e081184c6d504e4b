import { buildTar } from '../../differ/src/test-fixtures/tar-builder';
import { LayerScanner } from './tar-scan';

function scan(tar: Buffer, chunkSize = 700) {
  const scanner = new LayerScanner();
  for (let i = 0; i < tar.length; i += chunkSize) scanner.feed(tar.subarray(i, i + chunkSize));
  return scanner.finish();
}

describe('LayerScanner', () => {
  it('finds the directories a layer needs but does not list, and the ones it lists late', () => {
    const tar = buildTar([
      { name: 'usr/lib/liby.so', data: 'y' },
      { name: 'usr/share/doc/readme', data: 'r' },
      { name: 'data/new', data: 'n' },
      { name: 'data/', type: '5' },
      { name: 'etc/.wh.conf' },
      { name: 'var/cache/.wh..wh..opq' },
      { name: 'opt/', type: '5' },
      { name: 'opt/x', data: 'x' },
    ]);
    expect(scan(tar)).toEqual({
      rebasable: true,
      implicitDirs: ['etc', 'usr', 'usr/lib', 'usr/share', 'usr/share/doc', 'var', 'var/cache'],
      lateDirs: ['data'],
    });
  });

  it('reads long names from GNU and PAX headers, whatever the chunking', () => {
    const long = `${'a'.repeat(120)}/${'b'.repeat(120)}`;
    const tar = buildTar([
      { name: '././@LongLink', type: 'L', data: `${long}/file\0` },
      { name: 'cut', data: 'data' },
      { name: 'short', data: 'x'.repeat(1500), pax: { path: `${long}/pax-file` } },
    ]);
    for (const chunk of [1, 511, 512, 513, 4096]) {
      expect(scan(tar, chunk)).toEqual({ rebasable: true, implicitDirs: ['a'.repeat(120), long], lateDirs: [] });
    }
  });

  it('says a layer cannot be moved when an entry lies below a symlink of the same layer, has .., or makes the root opaque', () => {
    expect(scan(buildTar([{ name: 'lnk', type: '2', linkname: 'usr' }, { name: 'lnk/f', data: 'f' }]))).toMatchObject({
      rebasable: false,
      reason: expect.stringMatching(/below "lnk"/),
    });
    expect(scan(buildTar([{ name: 'a/../b', data: 'f' }]))).toMatchObject({ rebasable: false });
    expect(scan(buildTar([{ name: '.wh..wh..opq' }]))).toMatchObject({ rebasable: false, reason: expect.stringMatching(/root opaque/) });
  });
});
