// expandTemplate: percent-encoding in URLs (no variable can change the
// origin or the path's shape), header values without CR/LF/NUL, typed body
// values, unknown variables failing closed, secret references left for the
// transport layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkTemplate,
  expandTemplate,
  hostMatches,
  injectSecrets,
  templatePlaceholders,
  templateSecretRefs,
  templateVariables,
  TemplateError,
} from '../../dist/gate/templates.js';
import { Registry } from '../../dist/gate/registry.js';
import { openDb } from '../../dist/ledger/db.js';

const T = {
  method: 'POST',
  url_template: 'https://api.example.test/repos/{{owner}}/{{ repo }}/issues?state={{state}}&n={{n}}',
  headers: { Accept: 'application/json', 'X-Owner': 'owner={{owner}}', Authorization: 'Bearer {{secret:TOKEN}}' },
  body_template: { title: '{{title}}', count: '{{n}}', flag: '{{flag}}', meta: '{{meta}}', lang: '{{meta.lang}}', label: 'issue: {{title}} #{{n}}', fixed: [1, 'two', null, true] },
};
const VARS = { owner: 'octo', repo: 'hello', state: 'open', n: 3, title: 'Bug', flag: false, meta: { lang: 'en', tags: ['a'] } };

function throwsTemplate(fn, re, variable) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof TemplateError, `expected a TemplateError, got ${e?.name}: ${e?.message}`);
    assert.match(e.message, re);
    if (variable !== undefined) assert.equal(e.variable, variable);
    return true;
  });
}

test('expands URL, headers and a typed body', () => {
  const r = expandTemplate(T, VARS, ['TOKEN']);
  assert.equal(r.method, 'POST');
  assert.equal(r.url, 'https://api.example.test/repos/octo/hello/issues?state=open&n=3');
  assert.deepEqual(r.headers, { Accept: 'application/json', 'X-Owner': 'owner=octo', Authorization: 'Bearer {{secret:TOKEN}}' });
  assert.deepEqual(r.body, { title: 'Bug', count: 3, flag: false, meta: { lang: 'en', tags: ['a'] }, lang: 'en', label: 'issue: Bug #3', fixed: [1, 'two', null, true] });
  assert.deepEqual(r.secretRefs, ['TOKEN']);
  // The body is a copy: changing it does not touch the request.
  r.body.meta.tags.push('b');
  assert.deepEqual(VARS.meta.tags, ['a']);
  // A template without body_template has no body.
  assert.equal(expandTemplate({ ...T, body_template: undefined }, VARS, ['TOKEN']).body, undefined);
});

test('URL values are percent-encoded and cannot change the origin or path shape', () => {
  const url = (owner, repo = 'r', state = 's') => expandTemplate(T, { ...VARS, owner, repo, state }, ['TOKEN']).url;
  assert.equal(url('evil.com/../'), 'https://api.example.test/repos/evil.com%2F..%2F/r/issues?state=s&n=3');
  assert.equal(url('@evil.com'), 'https://api.example.test/repos/%40evil.com/r/issues?state=s&n=3');
  assert.equal(url('a?b#c'), 'https://api.example.test/repos/a%3Fb%23c/r/issues?state=s&n=3');
  assert.equal(url('a b', 'ü'), 'https://api.example.test/repos/a%20b/%C3%BC/issues?state=s&n=3');
  assert.equal(url('x', 'r', 'a&admin=1#frag'), 'https://api.example.test/repos/x/r/issues?state=a%26admin%3D1%23frag&n=3');
  assert.equal(url('\\evil.com'), 'https://api.example.test/repos/%5Cevil.com/r/issues?state=s&n=3');
  assert.equal(url('%2e%2e'), 'https://api.example.test/repos/%252e%252e/r/issues?state=s&n=3');
  // Dot segments would be folded by the URL parser: refused.
  for (const bad of ['..', '.']) throwsTemplate(() => url(bad), /"\." or "\.\." path segment/);
  // An empty path segment is refused; an empty query value is fine.
  throwsTemplate(() => url(''), /is empty; it would leave an empty path segment/, 'owner');
  assert.equal(url('x', 'r', ''), 'https://api.example.test/repos/x/r/issues?state=&n=3');
  // Lone surrogates cannot be encoded.
  throwsTemplate(() => url('\uD800'), /not valid Unicode/, 'owner');
  // Only scalars go into a URL.
  throwsTemplate(() => url({ a: 1 }), /variable "owner" is an object; only strings, numbers and booleans/, 'owner');
  throwsTemplate(() => url(null), /variable "owner" is null/, 'owner');
  throwsTemplate(() => url(['a']), /variable "owner" is an array/, 'owner');
});

test('a variable at the end of the host part cannot extend the host', () => {
  const t = { method: 'GET', url_template: 'https://api.example.test/{{p}}', headers: {} };
  for (const p of ['@evil.com', '.evil.com', ':8080', '//evil.com', 'x@evil.com/y']) {
    const u = new URL(expandTemplate(t, { p }).url);
    assert.equal(u.origin, 'https://api.example.test', p);
  }
});

test('placeholders in scheme, host, port or fragment are refused, at load and at expansion', () => {
  for (const url_template of [
    'https://{{host}}/x',
    'https://api.{{host}}.test/x',
    'https://api.example.test:{{port}}/x',
    '{{scheme}}://api.example.test/x',
    'https://user:{{pw}}@api.example.test/x',
    'https://api.example.test{{path}}',
    'https://api.example.test/x#{{frag}}',
    'https://api.example.test/{{a}}/../x',
    'ftp://api.example.test/{{a}}',
    'https://api.example.test/{{secret:TOKEN}}',
  ]) {
    const t = { method: 'GET', url_template, headers: {} };
    const vars = { host: 'h', port: 1, scheme: 'https', pw: 'p', path: '/p', frag: 'f', a: 'a' };
    assert.throws(() => expandTemplate(t, vars, ['TOKEN']), TemplateError, url_template);
    assert.ok(checkTemplate(t).problems.length > 0, url_template);
  }
  assert.deepEqual(checkTemplate(T), { problems: [], info: { urlMode: 'fixed', hostname: 'api.example.test' } });
});

test('header values: CR, LF, NUL and other control characters are refused', () => {
  const t = { method: 'GET', url_template: 'https://api.example.test/x', headers: { 'X-Name': 'name={{name}}' } };
  for (const name of ['a\r\nX-Evil: 1', 'a\nb', 'a\rb', 'a\0b', 'a\x7fb', 'a\x01b', '\u2028', 'emoji 😀']) {
    throwsTemplate(() => expandTemplate(t, { name }), /not allowed in a header value|CR, LF or NUL/, 'name');
  }
  assert.equal(expandTemplate(t, { name: 'tab\tok café' }).headers['X-Name'], 'name=tab\tok café');
  assert.equal(expandTemplate(t, { name: 42 }).headers['X-Name'], 'name=42');
  throwsTemplate(() => expandTemplate(t, { name: { a: 1 } }), /only strings, numbers and booleans can go in a header value/, 'name');
  // A value cannot forge a secret reference for the transport layer.
  throwsTemplate(() => expandTemplate(t, { name: '{{secret:TOKEN}}' }, ['TOKEN']), /contains "\{\{" or "\}\}"/, 'name');
  // Header names are checked too.
  assert.throws(() => expandTemplate({ ...t, headers: { 'Bad Name': 'x' } }, {}), /not a valid HTTP header name/);
  assert.throws(() => expandTemplate({ ...t, headers: { 'X-A': 'a\r\nb' } }, {}), /not allowed in a header value/);
  assert.throws(() => expandTemplate({ ...t, headers: { 'X-A': '1', 'x-a': '2' } }, {}), /header given twice/);
});

test('body: exact placeholders keep their JSON type, longer strings interpolate', () => {
  const t = { method: 'POST', url_template: 'https://api.example.test/x', headers: {}, body_template: { v: '{{ v }}', s: '<{{v}}>' } };
  const cases = [
    ['text', 'text', '<text>'],
    [0, 0, '<0>'],
    [-1.5, -1.5, '<-1.5>'],
    [true, true, '<true>'],
    [null, null, null],
    [{ a: [1] }, { a: [1] }, null],
    [[1, 'x'], [1, 'x'], null],
  ];
  for (const [v, typed, interpolated] of cases) {
    if (interpolated === null) {
      throwsTemplate(() => expandTemplate(t, { v }), /only strings, numbers and booleans can go in a string/, 'v');
      assert.deepEqual(expandTemplate({ ...t, body_template: { v: '{{v}}' } }, { v }).body, { v: typed });
    } else {
      assert.deepEqual(expandTemplate(t, { v }).body, { v: typed, s: interpolated });
    }
  }
  // A whole body from one variable.
  assert.deepEqual(expandTemplate({ ...t, body_template: '{{v}}' }, { v: [1, { b: 2 }] }).body, [1, { b: 2 }]);
  // Placeholders in keys and secrets in the body are refused.
  throwsTemplate(() => expandTemplate({ ...t, body_template: { '{{v}}': 1 } }, { v: 'k' }), /not allowed in keys/);
  throwsTemplate(() => expandTemplate({ ...t, body_template: { a: '{{secret:TOKEN}}' } }, {}, ['TOKEN']), /secrets may only appear in header values/);
});

test('an unknown variable fails closed, naming it', () => {
  throwsTemplate(() => expandTemplate(T, { ...VARS, owner: undefined }, ['TOKEN']), /unknown template variable "owner"/, 'owner');
  const { title, ...noTitle } = VARS;
  throwsTemplate(() => expandTemplate(T, noTitle, ['TOKEN']), /body_template\/title: unknown template variable "title"/, 'title');
  throwsTemplate(() => expandTemplate(T, { ...VARS, meta: { tags: [] } }, ['TOKEN']), /unknown template variable "meta\.lang"/, 'meta.lang');
  // Dotted paths go through own properties of plain objects only.
  const t = { method: 'GET', url_template: 'https://api.example.test/{{a.constructor}}', headers: {} };
  throwsTemplate(() => expandTemplate(t, { a: {} }), /unknown template variable "a\.constructor"/);
  throwsTemplate(() => expandTemplate({ ...t, url_template: 'https://api.example.test/{{a.length}}' }, { a: 'abc' }), /unknown template variable "a\.length"/);
  throwsTemplate(() => expandTemplate({ ...t, url_template: 'https://api.example.test/{{toString}}' }, {}), /unknown template variable "toString"/);
  // Malformed placeholders and unbalanced braces are errors, not literals.
  for (const url_template of ['https://api.example.test/{{a b}}', 'https://api.example.test/{{}}', 'https://api.example.test/{{a', 'https://api.example.test/a}}', 'https://api.example.test/{{1a}}']) {
    assert.throws(() => expandTemplate({ ...t, url_template }, { a: 'x' }), TemplateError, url_template);
  }
  // The request must be an object.
  assert.throws(() => expandTemplate(T, 'x'), /must be a JSON object/);
});

test('secret references: declared ones listed, undeclared ones fail, the transport injects values', () => {
  throwsTemplate(() => expandTemplate(T, VARS), /secret "TOKEN" is not declared/, 'TOKEN');
  throwsTemplate(() => expandTemplate(T, VARS, ['OTHER']), /secret "TOKEN" is not declared/, 'TOKEN');
  const t = { ...T, headers: { A: '{{secret:ONE}}', B: 'x {{secret:TWO}} {{ secret:ONE }}' } };
  const r = expandTemplate(t, VARS, ['ONE', 'TWO']);
  assert.deepEqual(r.secretRefs, ['ONE', 'TWO']);
  assert.deepEqual(r.headers, { A: '{{secret:ONE}}', B: 'x {{secret:TWO}} {{secret:ONE}}' });
  assert.deepEqual(templateSecretRefs(t), ['ONE', 'TWO']);
  const values = { ONE: 'tok-1', TWO: 'tok-2' };
  assert.deepEqual(injectSecrets(r.headers, (n) => values[n]), { A: 'tok-1', B: 'x tok-2 tok-1' });
  assert.throws(() => injectSecrets(r.headers, () => undefined), /secret "ONE" has no value/);
  assert.throws(() => injectSecrets(r.headers, () => 'a\r\nb'), /not allowed in a header value/);
});

test('whole-URL templates: the host must be in the egress allowlist', () => {
  const t = { method: 'GET', url_template: '{{url}}', headers: {} };
  const allowed = { allowedDomains: ['httpbin.org', '*.wikipedia.org'] };
  assert.equal(expandTemplate(t, { url: 'https://httpbin.org/get?a=1' }, [], allowed).url, 'https://httpbin.org/get?a=1');
  assert.equal(expandTemplate(t, { url: 'https://en.wikipedia.org/wiki/X#frag' }, [], allowed).url, 'https://en.wikipedia.org/wiki/X');
  for (const [url, re] of [
    ['https://evil.com/', /not in the action's egress allowlist/],
    ['https://wikipedia.org/', /not in the action's egress allowlist/],
    ['https://httpbin.org.evil.com/', /not in the action's egress allowlist/],
    ['https://evilhttpbin.org/', /not in the action's egress allowlist/],
    ['https://httpbin.org@evil.com/', /user name or password/],
    ['https://httpbin.org:8443/', /explicit port/],
    ['file:///etc/passwd', /only http and https/],
    ['javascript:alert(1)', /only http and https/],
    ['//httpbin.org/', /not an absolute URL/],
    ['not a url', /not an absolute URL/],
  ]) {
    throwsTemplate(() => expandTemplate(t, { url }, [], allowed), re, 'url');
  }
  throwsTemplate(() => expandTemplate(t, { url: 5 }, [], allowed), /must be a string holding a URL/);
  throwsTemplate(() => expandTemplate(t, { url: 'https://httpbin.org/' }), /needs the egress allowlist/);
  assert.deepEqual(checkTemplate(t), { problems: [], info: { urlMode: 'whole' } });
});

test('checkTemplate: a whole-URL template may not send a secret (the request would choose where it goes); a fixed origin may', () => {
  const whole = { method: 'POST', url_template: '{{url}}', headers: { Authorization: 'Bearer {{secret:TOKEN}}', 'Content-Type': 'application/json' }, body_template: { k: 'x {{secret:TOKEN}}' } };
  const { problems } = checkTemplate(whole);
  assert.deepEqual(problems.map((p) => p.location), [['headers', 'Authorization'], ['body_template', 'k']]);
  assert.match(problems[0].message, /whole-URL template .* may not send a secret; write the origin in url_template/);
  assert.deepEqual(checkTemplate({ ...whole, url_template: 'https://api.example.test/{{path}}' }).problems, []);
});

test('hostMatches: exact names and subdomains of *.suffix only', () => {
  assert.equal(hostMatches('api.com', ['api.com']), true);
  assert.equal(hostMatches('API.com.', ['api.com']), true);
  assert.equal(hostMatches('evil-api.com', ['api.com']), false);
  assert.equal(hostMatches('x.api.com', ['api.com']), false);
  assert.equal(hostMatches('x.api.com', ['*.api.com']), true);
  assert.equal(hostMatches('a.b.api.com', ['*.api.com']), true);
  assert.equal(hostMatches('api.com', ['*.api.com']), false);
  assert.equal(hostMatches('xapi.com', ['*.api.com']), false);
  assert.equal(hostMatches('', ['*.api.com']), false);
});

test('templateVariables and templatePlaceholders list what a template uses, with locations', () => {
  assert.deepEqual(templateVariables(T), ['owner', 'repo', 'state', 'n', 'title', 'flag', 'meta', 'meta.lang']);
  assert.deepEqual(templateVariables({ method: 'GET', url_template: 'https://a.test/x', headers: {} }), []);
  const ps = templatePlaceholders({ method: 'POST', url_template: 'https://a.test/{{id}}', headers: { A: '{{secret:S}}' }, body_template: { list: ['x', '{{ b.c }}'] } });
  assert.deepEqual(ps, [
    { kind: 'var', name: 'id', location: ['url_template'] },
    { kind: 'secret', name: 'S', location: ['headers', 'A'] },
    { kind: 'var', name: 'b.c', location: ['body_template', 'list', 1] },
  ]);
  assert.throws(() => templateVariables({ method: 'GET', url_template: 'https://a.test/{{ a b }}', headers: {} }), /malformed placeholder/);
});

test('the shipped templates expand as intended', () => {
  const db = openDb(':memory:');
  const reg = Registry.open(db);
  const exp = (id, vars) => {
    const m = reg.get(id).manifest;
    assert.deepEqual(reg.validateRequest(id, vars), { ok: true });
    return expandTemplate(m.template, vars, m.secrets.map((s) => s.name), { allowedDomains: m.egress.allowed_domains });
  };
  const gh = exp('github_read', { owner: 'octocat', repo: 'hello.world', resource: 'issues' });
  assert.equal(gh.url, 'https://api.github.com/repos/octocat/hello.world/issues');
  assert.deepEqual(gh.secretRefs, ['GITHUB_TOKEN']);
  assert.equal(gh.headers.Authorization, 'Bearer {{secret:GITHUB_TOKEN}}');
  const issue = exp('github_create_issue', { owner: 'o', repo: 'r', title: 'T', body: 'B', labels: ['bug'] });
  assert.equal(issue.method, 'POST');
  assert.deepEqual(issue.body, { title: 'T', body: 'B', labels: ['bug'] });
  const post = exp('http_post', { url: 'https://httpbin.org/post', body: { a: [1, 2] } });
  assert.deepEqual(post.body, { a: [1, 2] });
  assert.equal(exp('http_fetch', { url: 'https://en.wikipedia.org/wiki/Cat' }).url, 'https://en.wikipedia.org/wiki/Cat');
  assert.throws(() => exp('http_fetch', { url: 'https://example.com/' }), /not in the action's egress allowlist/);
  db.close();
});

test('body secrets: left in the strings of a JSON body for the transport; refused in another body, at the top, or undeclared', () => {
  const t = { method: 'POST', url_template: 'https://api.example.test/x', headers: { 'Content-Type': 'application/json' }, body_template: { key: '{{secret:TOKEN}}', note: 'by {{who}} with {{ secret:OTHER }}', list: ['{{secret:TOKEN}}'] } };
  const r = expandTemplate(t, { who: 'me' }, ['TOKEN', 'OTHER']);
  assert.deepEqual(r.body, { key: '{{secret:TOKEN}}', note: 'by me with {{secret:OTHER}}', list: ['{{secret:TOKEN}}'] });
  assert.deepEqual(r.secretRefs, ['TOKEN', 'OTHER']);
  assert.deepEqual(checkTemplate(t).problems, []);
  assert.deepEqual(templateSecretRefs(t), ['TOKEN', 'OTHER']);
  // A +json type is JSON too.
  assert.deepEqual(checkTemplate({ ...t, headers: { 'content-type': 'application/vnd.api+json; charset=utf-8' } }).problems, []);
  throwsTemplate(() => expandTemplate(t, { who: 'me' }, ['TOKEN']), /secret "OTHER" is not declared/, 'OTHER');
  for (const bad of [
    { ...t, headers: {} },
    { ...t, headers: { 'Content-Type': 'text/plain' } },
    { ...t, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
    { ...t, body_template: 'token={{secret:TOKEN}}' },
  ]) {
    throwsTemplate(() => expandTemplate(bad, { who: 'me' }, ['TOKEN', 'OTHER']), /secrets may only appear in header values and in strings of a JSON body_template/);
    assert.ok(checkTemplate(bad).problems.some((p) => /JSON body_template/.test(p.message)), JSON.stringify(bad));
  }
});

test('attack: a request value never makes a secret placeholder, alone or with the template text around it', () => {
  const json = { 'Content-Type': 'application/json' };
  const body = (body_template) => ({ method: 'POST', url_template: 'https://api.example.test/x', headers: json, body_template });
  const forged = /would make a "\{\{secret:" placeholder/;
  // Whole values (strings, nested strings, keys), interpolated values, and values that complete the template's own braces.
  for (const [tmpl, vars] of [
    [{ a: '{{v}}' }, { v: '{{secret:TOKEN}}' }],
    [{ a: '{{v}}' }, { v: { deep: ['x', '{{ SECRET : TOKEN }}'] } }],
    [{ a: '{{v}}' }, { v: { '{{secret:TOKEN}}': 1 } }],
    ['{{v}}', { v: ['{{secret:TOKEN}}'] }],
    [{ a: 'x {{v}}' }, { v: '{{secret:TOKEN}}' }],
    [{ a: '{{{v}}' }, { v: '{secret:TOKEN}}' }],
    [{ a: '{{v}}{{w}}' }, { v: '{', w: '{secret:TOKEN}}' }],
    [{ a: '{{v}}{{secret:TOKEN}}' }, { v: '{{secret:' }],
  ]) {
    throwsTemplate(() => expandTemplate(body(tmpl), vars, ['TOKEN']), forged);
  }
  // Headers: the same, including braces the template text supplies around a value without "{{".
  const h = (v) => ({ method: 'GET', url_template: 'https://api.example.test/x', headers: { 'X-A': v } });
  throwsTemplate(() => expandTemplate(h('a{{{v}}}'), { v: '{secret:TOKEN}' }, ['TOKEN']), forged);
  throwsTemplate(() => expandTemplate(h('{{{v}}}'), { v: '{Secret: TOKEN}' }, ['TOKEN']), forged);
  // Legitimate: braces and the word secret in values, and the template's own placeholder next to a value.
  assert.deepEqual(expandTemplate(body({ a: '{{v}}', b: 'x{{v}}', c: '{{v}}{{secret:TOKEN}}' }), { v: '{secret} {{name}} }}' }, ['TOKEN']).body, {
    a: '{secret} {{name}} }}',
    b: 'x{secret} {{name}} }}',
    c: '{secret} {{name}} }}{{secret:TOKEN}}',
  });
  assert.equal(expandTemplate(h('a{{{v}}}'), { v: 'secret:TOKEN' }, ['TOKEN']).headers['X-A'], 'a{secret:TOKEN}');
});
