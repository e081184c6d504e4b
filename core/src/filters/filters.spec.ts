import fc from 'fast-check';
import { InvalidArgumentError, isInvalidArgument } from '../errdefs';
import {
  FieldAdaptor,
  FilterSyntaxError,
  Selector,
  adaptObject,
  compileSelectors,
  formatFilter,
  parseFilter,
  parseFilters,
  parseSelectors,
} from './index';

// Records shaped like the corpus of containerd's own filter tests: a name that
// counts as present only when non-empty, an optional `other`, and labels whose
// keys may contain dots, spaces and quotes.
interface Entry {
  name: string;
  other?: string;
  labels?: Record<string, string>;
}

const corpus: Entry[] = [
  { name: 'foo', labels: { foo: 'true' } },
  { name: 'bar' },
  { name: 'foo', labels: { foo: 'present', 'more complex label': 'present' } },
  { name: 'bar', labels: { bar: 'true' } },
  { name: 'fooer', labels: { 'more complex label with \\ and "': 'present' } },
  { name: 'fooer', labels: { 'more complex label with \\ and ".post': 'present' } },
  { name: 'baz', other: 'too complex, yo' },
  { name: 'bazo', other: 'abc' },
  { name: 'compound', labels: { foo: 'omg_asdf.asdf-qwer' } },
];

function matching(filter: { match(adaptor: FieldAdaptor): boolean }): number[] {
  return corpus.flatMap((entry, index) => (filter.match(adaptObject(entry)) ? [index] : []));
}

function parseError(run: () => unknown): FilterSyntaxError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(FilterSyntaxError);
    return err as FilterSyntaxError;
  }
  throw new Error('expected a parse error');
}

describe('parseFilter matching (containerd corpus)', () => {
  const all = corpus.map((_, i) => i);
  it.each<[string, number[]]>([
    ['', all],
    ['name', all],
    ['labels.foo', [0, 2, 8]],
    ['labels.foo,name', [0, 2, 8]],
    ['labels.foo==true', [0]],
    ['labels.foo==omg_asdf.asdf-qwer', [8]],
    ['name==bar', [1, 3]],
    ['name!=bar', [0, 2, 4, 5, 6, 7, 8]],
    ['name==bar,labels.bar', [3]],
    ['other=="too complex, yo"', [6]],
    ['other~=[abc]+,name!=foo', [6, 7]],
    ['other~=/[abc]+/,name!=foo', [6, 7]],
    ['other~=/[abc]{1,2}/,name!=foo', [6, 7]],
    ['other~=/[abc]{0,1}"\\//,name!=foo', []],
    ['other~=|^a.c$|', [7]],
    ['name==bar,labels.bar==true', [3]],
    ['name==bar,labels.bar==wrong', []],
    ['name==foo,labels."more complex label"', [2]],
    ['labels."more complex label with \\\\ and \\""==present', [4]],
    ['labels."more complex label with \\\\ and \\"".post==present', [5]],
    ['name~=^foo', [0, 2, 4, 5]],
    ['name~=(?i)^FOO$', [0, 2]],
    ['name == bar', [1, 3]],
    [' name==bar, labels.bar', [3]],
    ['labels.foo!=true', [1, 2, 3, 4, 5, 6, 7, 8]],
    ['other~=^$', [0, 1, 2, 3, 4, 5, 8]],
    ['labels.nope', []],
  ])('%s', (expression, expected) => {
    expect(matching(parseFilter(expression))).toEqual(expected);
  });
});

describe('event-style filters', () => {
  const envelope = (namespace: string, topic: string) => adaptObject({ namespace, topic });
  it.each<[string, string, string, boolean]>([
    ['topic=="/tasks/exit"', 'default', '/tasks/exit', true],
    ['topic=="/tasks/exit"', 'default', '/tasks/start', false],
    ['namespace==default,topic~="^/tasks/"', 'default', '/tasks/oom', true],
    ['namespace==default,topic~="^/tasks/"', 'other', '/tasks/oom', false],
    ['namespace==default,topic~="^/tasks/"', 'default', '/images/create', false],
    ['topic~=|^/tasks/.*|', 'default', '/tasks/exit', true],
    ['topic~=/^\\/tasks\\/.*/', 'default', '/tasks/exit', true],
    ['topic~=/^\\/tasks\\/.*/', 'default', '/containers/create', false],
    ['namespace!=k8s.io', 'k8s.io', '/tasks/exit', false],
    ['namespace!=k8s.io', 'moby', '/tasks/exit', true],
  ])('%s on %s %s', (expression, namespace, topic, expected) => {
    expect(parseFilter(expression).match(envelope(namespace, topic))).toBe(expected);
  });
});

describe('parseSelectors', () => {
  it.each<[string, Selector[]]>([
    ['', []],
    ['labels.foo', [{ fieldPath: ['labels', 'foo'], operator: 'present' }]],
    ['labels."com.example.foo"==bar', [{ fieldPath: ['labels', 'com.example.foo'], operator: '==', value: 'bar' }]],
    ['a==x=y', [{ fieldPath: ['a'], operator: '==', value: 'x=y' }]],
    ['a==x"y"', [{ fieldPath: ['a'], operator: '==', value: 'x"y"' }]],
    // Single quotes are not quotes to containerd: they stay part of a bare value.
    ["a=='x'", [{ fieldPath: ['a'], operator: '==', value: "'x'" }]],
    ['a==x.y-z_1', [{ fieldPath: ['a'], operator: '==', value: 'x.y-z_1' }]],
    ['-1._x', [{ fieldPath: ['-1', '_x'], operator: 'present' }]],
    ['""==""', [{ fieldPath: [''], operator: '==', value: '' }]],
    ['a=="\\u00e9\\x41\\101\\t\\\\"', [{ fieldPath: ['a'], operator: '==', value: 'éAA\t\\' }]],
    ['a=="\\xc3\\xa9"', [{ fieldPath: ['a'], operator: '==', value: 'é' }]],
    ['a=="\\U0001F600"', [{ fieldPath: ['a'], operator: '==', value: '😀' }]],
    ['a=="\\ud800"', [{ fieldPath: ['a'], operator: '==', value: '\uFFFD' }]],
    ['a~=/a\\/b/', [{ fieldPath: ['a'], operator: '~=', value: 'a/b' }]],
    ['a~=|x\\|y|', [{ fieldPath: ['a'], operator: '~=', value: 'x|y' }]],
    ['a==é😀', [{ fieldPath: ['a'], operator: '==', value: 'é😀' }]],
  ])('%s', (expression, expected) => {
    expect(parseSelectors(expression)).toEqual(expected);
  });
});

describe('parse errors', () => {
  it.each<[string, number, string]>([
    ['==x', 0, 'expected field or quoted'],
    ['a==', 3, 'expected value or quoted'],
    ['a== ', 4, 'expected value or quoted'],
    ['a=="x', 3, 'quoted literal not terminated'],
    ['a=="x\ny"', 3, 'quoted literal not terminated'],
    ['a~=[', 3, 'invalid regular expression'],
    ['a~=(?U)x', 3, 'invalid regular expression'],
    ['name==foo,', 10, 'expected field or quoted'],
    ['labels.', 7, 'expected field or quoted'],
    ['image~=,id?=?fbaq', 7, 'expected value or quoted'],
    ['labels.ns/key==value', 9, 'quoted literal not terminated'],
    ['labels.key==/value', 12, 'quoted literal not terminated'],
    ['labels.|foo|==x', 7, 'invalid quote encountered'],
    ['labels.?"x"==present', 7, 'expected field or quoted'],
    // `/.../` quoting is only for regexps, so a bare topic needs double quotes.
    ['topic==/tasks/exit', 7, 'invalid quote encountered'],
    // The regexp ends at the second slash; the rest is not a selector.
    ['namespace==default,topic~=/tasks/.*', 33, 'unexpected input "."'],
    ['a=b', 1, 'unsupported operator "="'],
    ['a===b', 1, 'unsupported operator "==="'],
    ['a b', 2, 'expected an operator'],
    ['a .b==c', 2, 'expected an operator'],
    ['a==b ', 4, 'unexpected input " "'],
    ['a==b ,c', 4, 'unexpected input " "'],
    ['a=="b"c', 6, 'unexpected input "c"'],
    ['a==.b', 3, 'expected value or quoted'],
    ['a== ==b', 4, 'expected value or quoted'],
    ['a==x,,b', 5, 'expected field or quoted'],
    [',a', 0, 'expected field or quoted'],
    ['  ', 2, 'expected field or quoted'],
    ["'a'==x", 0, 'expected field or quoted'],
    ['a=="\\q"', 4, 'illegal escape sequence'],
    ['a=="\\\'"', 4, 'illegal escape sequence'],
    ['a~=/\\d/', 4, 'illegal escape sequence'],
    ['a=="\\x4"', 4, 'illegal numeric escape sequence'],
    ['a=="\\400"', 4, 'octal escape value > 255'],
    ['a=="\\U00110000"', 4, 'escaped code point out of range'],
    ['a=="\\xff"', 3, 'not valid UTF-8'],
    ['a\0', 1, 'illegal character'],
    ['a==\uD800', 3, 'illegal character'],
  ])('%j', (expression, position, reason) => {
    const err = parseError(() => parseFilter(expression));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.expression).toBe(expression);
    expect(err.position).toBe(position);
    expect(err.reason).toContain(reason);
    expect(err.message).toContain(JSON.stringify(expression));
    expect(err.message).toContain(`position ${position}`);
  });

  it('parseSelectors rejects bad regexps too', () => {
    expect(parseError(() => parseSelectors('a==b,c~=(')).position).toBe(8);
  });
});

describe('parseFilters', () => {
  const entry = adaptObject({ name: 'foo', labels: { env: 'prod' } });

  it('matches everything with no strings or an empty one', () => {
    expect(parseFilters([]).match(entry)).toBe(true);
    expect(parseFilters(['']).match(entry)).toBe(true);
    expect(parseFilters(['', '']).match(entry)).toBe(true);
    expect(parseFilters(['name==nope', '']).match(entry)).toBe(true);
  });

  it('ORs the strings and ANDs within each', () => {
    expect(parseFilters(['name==bar', 'labels.env==prod']).match(entry)).toBe(true);
    expect(parseFilters(['name==bar', 'name==baz']).match(entry)).toBe(false);
    expect(parseFilters(['name==foo,labels.env==dev', 'name==bar']).match(entry)).toBe(false);
    expect(parseFilters(['name==bar', 'name==foo,labels.env==prod']).match(entry)).toBe(true);
  });

  it('fails on any bad string, naming it', () => {
    const err = parseError(() => parseFilters(['name==foo', 'labels.']));
    expect(err.expression).toBe('labels.');
  });
});

describe('adaptObject', () => {
  const adapt = adaptObject({
    id: 'c1',
    pid: 42,
    running: false,
    empty: '',
    created: new Date('2024-01-02T03:04:05.000Z'),
    labels: { 'com.example.foo': 'bar', a: 'x', 'a.b': 'y' },
    spec: { process: { cwd: '/' } },
  });

  it.each<[string[], string | undefined]>([
    [['id'], 'c1'],
    [['pid'], '42'],
    [['running'], 'false'],
    [['empty'], ''],
    [['created'], '2024-01-02T03:04:05.000Z'],
    [['labels', 'com.example.foo'], 'bar'],
    [['labels', 'com', 'example', 'foo'], 'bar'],
    [['labels', 'a'], 'x'],
    [['labels', 'a', 'b'], 'y'],
    [['spec', 'process', 'cwd'], '/'],
    [['spec', 'process'], undefined],
    [['labels'], undefined],
    [['missing'], undefined],
    [['id', 'length'], undefined],
    [['constructor'], undefined],
    [['labels', 'toString'], undefined],
    [[], undefined],
  ])('%j', (path, expected) => {
    expect(adapt(path)).toBe(expected);
  });

  it('lets filters reach dotted label keys with or without quotes', () => {
    expect(parseFilter('labels."com.example.foo"==bar').match(adapt)).toBe(true);
    expect(parseFilter('labels.com.example.foo==bar').match(adapt)).toBe(true);
    expect(parseFilter('pid==42,running==false').match(adapt)).toBe(true);
    expect(parseFilter('pid==42,running==false,spec.process.cwd=="/"').match(adapt)).toBe(true);
  });
});

describe('properties', () => {
  // Small alphabets make generated fields and values collide often enough for
  // equality to be exercised both ways; the unicode ones stress quoting.
  const word = fc.string({ unit: fc.constantFrom('a', 'b', '.', ' ', ',', '"', '\\', '/', '|', '=', 'é', '😀', '\n'), maxLength: 4 });
  const text = fc.oneof(word, fc.string({ unit: 'binary', maxLength: 6 }));
  const fieldPath = fc.array(text, { minLength: 1, maxLength: 3 });
  const regexp = fc.oneof(
    fc.constantFrom('', '.', '^a', 'b$', '(?i)A', 'a|b', '[ab]+', '^$', '\\.', '😀', 'a{2}'),
    text.map((s) => s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')),
  );
  const selector: fc.Arbitrary<Selector> = fc.oneof(
    fieldPath.map((path): Selector => ({ fieldPath: path, operator: 'present' })),
    fc.record({ fieldPath, operator: fc.constantFrom('==' as const, '!=' as const), value: text }),
    fc.record({ fieldPath, operator: fc.constant('~=' as const), value: regexp }),
  );
  const selectors = fc.array(selector, { minLength: 1, maxLength: 4 });

  /** Field values keyed by path, drawn from the filter's own paths and values so matches happen. */
  function recordsFor(ast: Selector[]): fc.Arbitrary<FieldAdaptor[]> {
    const paths = ast.map((s) => s.fieldPath);
    const values = ast.flatMap((s) => (s.operator === 'present' ? [] : [s.value]));
    const value = values.length > 0 ? fc.oneof(fc.constantFrom(...values), text) : text;
    const record = fc.array(fc.tuple(fc.constantFrom(...paths), value), { maxLength: 4 }).map((entries) => {
      const fields = new Map(entries.map(([path, v]) => [JSON.stringify(path), v]));
      return (path: string[]) => fields.get(JSON.stringify(path));
    });
    return fc.array(record, { minLength: 1, maxLength: 5 });
  }

  it('formatting selectors and parsing the text gives them back', () => {
    fc.assert(
      fc.property(selectors, (ast) => {
        expect(parseSelectors(formatFilter(ast))).toEqual(ast);
      }),
    );
  });

  it('a formatted filter matches exactly what its selectors match', () => {
    fc.assert(
      fc.property(selectors.chain((ast) => fc.tuple(fc.constant(ast), recordsFor(ast))), ([ast, adaptors]) => {
        const direct = compileSelectors(ast);
        const parsed = parseFilter(formatFilter(ast));
        for (const adaptor of adaptors) expect(parsed.match(adaptor)).toBe(direct.match(adaptor));
      }),
    );
  });

  it('fields that are present always satisfy their own presence and equality', () => {
    fc.assert(
      fc.property(fieldPath, text, (path, value) => {
        const adaptor = (p: string[]) => (JSON.stringify(p) === JSON.stringify(path) ? value : undefined);
        const expr = formatFilter([{ fieldPath: path, operator: 'present' }, { fieldPath: path, operator: '==', value }]);
        expect(parseFilter(expr).match(adaptor)).toBe(true);
        expect(parseFilter(formatFilter([{ fieldPath: path, operator: '!=', value }])).match(adaptor)).toBe(false);
      }),
    );
  });

  it('a==v matches exactly when field a equals v', () => {
    fc.assert(
      fc.property(text, text, (wanted, actual) => {
        const filter = parseFilter(formatFilter([{ fieldPath: ['a'], operator: '==', value: wanted }]));
        expect(filter.match(adaptObject({ a: actual }))).toBe(actual === wanted);
        expect(filter.match(adaptObject({ a: wanted }))).toBe(true);
        expect(filter.match(adaptObject({ b: wanted }))).toBe(false);
      }),
    );
  });

  it('label keys that need quoting round-trip through adaptObject', () => {
    fc.assert(
      fc.property(text, text, (key, value) => {
        const expr = formatFilter([{ fieldPath: ['labels', key], operator: '==', value }]);
        expect(parseFilter(expr).match(adaptObject({ labels: { [key]: value } }))).toBe(true);
      }),
    );
  });

  it('never throws anything but InvalidArgument on arbitrary input', () => {
    const grammarish = fc.string({
      unit: fc.constantFrom('a', 'x', '0', '-', '=', '!', '~', '.', ',', '"', "'", '/', '|', '\\', ' ', '\n', '(', '[', 'u', 'é', '😀', '\0', '\uD800'),
      maxLength: 16,
    });
    fc.assert(
      fc.property(fc.oneof(grammarish, fc.string({ unit: 'binary' }), fc.string()), (input) => {
        try {
          parseFilter(input).match(adaptObject({ a: 'x', x: { a: 'y' } }));
        } catch (err) {
          expect(isInvalidArgument(err)).toBe(true);
          expect(err).toBeInstanceOf(FilterSyntaxError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
