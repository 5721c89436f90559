// The providers' TLS connections check the server's name with less work than
// Node's own path (src/providers/http-transport.ts, checkedByLeaf): this file
// holds that check to Node's. Leaf certificates of one test CA (openssl CLI)
// name hosts in the ways that matter: DNS names and wildcards, a CN with no
// subjectAltName, a CN beside IP or e-mail names only, and an entry quoted
// because it carries ", DNS:" inside it. Every certificate is offered for
// every host name, to openConnection and to plain tls.connect with Node's
// checkServerIdentity, and the two must agree each time; a few outcomes are
// also asserted outright, so that agreeing on refusing everything cannot pass.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openConnection, secureContextFor } from '../../dist/providers/http-transport.js';
import { haveOpenssl } from '../fixtures/egress-cred/pki.mjs';

const skip = haveOpenssl() ? false : 'the openssl CLI is needed to make the test CA';

/** Leaf name -> [subject CN, extension lines] (no subjectAltName line: none). */
const LEAVES = {
  dns: ['other.test', 'subjectAltName=DNS:api.example.test'],
  wildcard: ['other.test', 'subjectAltName=DNS:*.example.test'],
  partialWildcard: ['other.test', 'subjectAltName=DNS:a*.example.test'],
  topWildcard: ['other.test', 'subjectAltName=DNS:*.test'],
  cnOnly: ['api.example.test', ''],
  cnWildcardOnly: ['*.example.test', ''],
  cnBesideIp: ['api.example.test', 'subjectAltName=IP:127.0.0.1'],
  cnBesideEmail: ['api.example.test', 'subjectAltName=email:ops@example.test'],
  dnsBesideOthers: ['other.test', 'subjectAltName=email:ops@example.test,URI:https://example.test/,IP:127.0.0.1,DNS:x.example.test,DNS:api.example.test'],
  dnsWithCnElsewhere: ['api.example.test', 'subjectAltName=DNS:x.example.test'],
  quotedUri: ['other.test', 'subjectAltName=@alt\n[alt]\nURI.1=https://a.test/, DNS:api.example.test'],
  quotedUriAndCn: ['api.example.test', 'subjectAltName=@alt\n[alt]\nURI.1=https://a.test/, DNS:api.example.test'],
};
const HOSTS = ['api.example.test', 'x.example.test', 'ab.example.test', 'a.b.example.test', 'example.test', 'API.Example.TEST', 'other.test', 'api.example.test.evil.test'];

let dir;
let caPem;
const servers = new Map();

function ssl(args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'latchgate-tls-names-'));
  ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=latchgate name-check CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  for (const [name, [cn, san]] of Object.entries(LEAVES)) {
    ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    // The [alt] section, when there is one, must come after the plain lines.
    const [first, ...section] = san.split('\n');
    writeFileSync(join(dir, `${name}.ext`), [first, 'basicConstraints=CA:FALSE', 'extendedKeyUsage=serverAuth', ...section, ''].filter((l, i) => l !== '' || i > 0).join('\n'));
    ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
    const server = tls.createServer({ key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) }, (s) => s.end());
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    servers.set(name, server);
  }
});

after(() => {
  for (const s of servers.values()) s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Resolves 'accepted' or the error's code for one connection attempt. */
function outcome(socket) {
  return new Promise((resolve) => {
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve('accepted');
    });
    socket.once('error', (e) => {
      socket.destroy();
      resolve(e.code ?? e.message);
    });
  });
}

const ours = (port, host) => outcome(openConnection({ target: { scheme: 'https', host }, address: '127.0.0.1', port, family: 4, secureContext: secureContextFor([caPem]) }));
const node = (port, host) => outcome(tls.connect({ host: '127.0.0.1', port, servername: host, secureContext: secureContextFor([caPem]), checkServerIdentity: tls.checkServerIdentity }));

test('the name check of the providers\' connections agrees with Node\'s on every certificate and host name', { skip }, async () => {
  const seen = {};
  for (const [name, server] of servers) {
    const port = server.address().port;
    for (const host of HOSTS) {
      const [a, b] = [await ours(port, host), await node(port, host)];
      assert.equal(a, b, `certificate ${name} (${JSON.stringify(LEAVES[name])}) for ${host}: ours ${a}, Node ${b}`);
      seen[`${name} ${host}`] = a;
    }
  }
  // Not all refused, not all accepted: the cases below would catch a check that does nothing, or too much.
  assert.equal(seen['dns api.example.test'], 'accepted');
  assert.equal(seen['dns API.Example.TEST'], 'accepted');
  assert.equal(seen['dns x.example.test'], 'ERR_TLS_CERT_ALTNAME_INVALID');
  assert.equal(seen['wildcard x.example.test'], 'accepted');
  assert.equal(seen['wildcard a.b.example.test'], 'ERR_TLS_CERT_ALTNAME_INVALID');
  assert.equal(seen['cnOnly api.example.test'], 'accepted');
  assert.equal(seen['cnBesideIp api.example.test'], 'accepted');
  assert.equal(seen['dnsWithCnElsewhere api.example.test'], 'ERR_TLS_CERT_ALTNAME_INVALID', 'the CN counted beside a DNS name');
  assert.equal(seen['quotedUri api.example.test'], 'ERR_TLS_CERT_ALTNAME_INVALID', 'a DNS name read out of a quoted URI');
  assert.equal(seen['dnsBesideOthers api.example.test'], 'accepted');
  assert.equal(seen['dns api.example.test.evil.test'], 'ERR_TLS_CERT_ALTNAME_INVALID');
});
