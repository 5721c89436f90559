// Tampering with real sops files (seeded, deterministic): a bit flipped in
// every kind of field (a value's data, iv, tag and type, the MAC,
// lastmodified, and the age file holding the data key: its stanza, header
// MAC and payload), and the file cut at many offsets. Each gives its own
// SecretsError code, never a value; the only reads that succeed are of
// fields the SOPS format leaves unauthenticated (the version, other key
// services), and they give exactly the right plaintext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { armor, dearmor } from '../../dist/secrets/age.js';
import { decryptSopsText } from '../../dist/secrets/sops-read.js';
import { formatOf, parseStore } from '../../dist/secrets/sops-stores.js';
import { SecretsError } from '../../dist/secrets/secret-values.js';
import { prng } from '../fixtures/unit/helpers.mjs';
import { corpusIdentities, corpusMissing, corpusPath, sopsFiles } from '../helpers/sops-corpus.mjs';

const skip = corpusMissing ?? false;

/** The outcome of reading text: the error code, or 'ok' when it gave exactly the expected tree (anything else fails the test). */
function outcome(text, e, identities, what) {
  try {
    const { document } = decryptSopsText(text, { file: e.file, format: formatOf(e.file), identities });
    assert.deepEqual(document.tree, e.plaintext, `${e.file}: ${what} gave a wrong value`);
    return 'ok';
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.ok(err instanceof SecretsError, `${e.file}: ${what}: ${err?.stack}`);
    return err.code;
  }
}

const flipAt = (text, pos, bit) => {
  const b = Buffer.from(text, 'latin1');
  b[pos] ^= 1 << bit;
  return b.toString('latin1');
};

/** Ranges [start, end) of each kind of field in the file's text. */
function fields(text) {
  const out = { data: [], iv: [], tag: [], type: [], mac: [], lastmodified: [] };
  for (const m of text.matchAll(/ENC\[AES256_GCM,data:([^,]*),iv:([^,]*),tag:([^,]*),type:([^\]]*)\]/dg)) {
    const isMac = /mac["]?(: "?|=)$/.test(text.slice(Math.max(0, m.index - 8), m.index));
    if (isMac) out.mac.push([m.index, m.index + m[0].length]);
    else for (const [i, k] of [[1, 'data'], [2, 'iv'], [3, 'tag'], [4, 'type']]) out[k].push(m.indices[i]);
  }
  const lm = /lastmodified"?[:=] ?"?(\d[^"\n]*)/d.exec(text);
  out.lastmodified.push(lm.indices[1]);
  return out;
}

const EXPECTED = {
  data: { primary: 'value_auth_failed', also: ['bad_value', 'malformed_file'] },
  iv: { primary: 'value_auth_failed', also: ['bad_value', 'malformed_file'] },
  tag: { primary: 'value_auth_failed', also: ['bad_value', 'malformed_file'] },
  type: { primary: 'bad_value', also: ['malformed_file'] },
  mac: { primary: 'mac_auth_failed', also: ['bad_value', 'malformed_file', 'mac_mismatch'] },
  lastmodified: { primary: 'mac_auth_failed', also: ['bad_metadata', 'malformed_file'] },
};

test('a bit flipped in any value\'s data, iv, tag or type, the MAC or lastmodified gives that field\'s error, never a value', { skip }, () => {
  const r = prng(0x5eed01);
  for (const e of sopsFiles()) {
    const text = readFileSync(corpusPath(e.file), 'latin1');
    const identities = corpusIdentities(e.age_identity_file);
    assert.equal(outcome(text, e, identities, 'the untouched file'), 'ok');
    for (const [kind, ranges] of Object.entries(fields(text))) {
      assert.ok(ranges.length > 0, `${e.file}: no ${kind} field found`);
      const seen = new Map();
      for (let i = 0; i < 40; i++) {
        const [start, end] = r.pick(ranges);
        const pos = start + r.below(end - start);
        const code = outcome(flipAt(text, pos, r.below(8)), e, identities, `a flip in ${kind} at ${pos}`);
        assert.ok([EXPECTED[kind].primary, ...EXPECTED[kind].also].includes(code), `${e.file}: a flip in ${kind} at ${pos} gave ${code}`);
        seen.set(code, (seen.get(code) ?? 0) + 1);
      }
      assert.ok(seen.get(EXPECTED[kind].primary) > 0, `${e.file}: flips in ${kind} never gave ${EXPECTED[kind].primary}: ${[...seen]}`);
    }
  }
});

test('a bit flipped in the age file of the data key (stanza, header MAC, payload) gives that part\'s error', { skip }, () => {
  const r = prng(0x5eed02);
  for (const e of sopsFiles()) {
    const text = readFileSync(corpusPath(e.file), 'latin1');
    const identities = corpusIdentities(e.age_identity_file);
    const { metadata } = parseStore(formatOf(e.file), text, e.file);
    const entry = metadata.get('age').find((a) => a.get('recipient') === e.recipient);
    const bin = dearmor(entry.get('enc'));
    const macLine = bin.indexOf('\n--- ') + 1;
    const payload = bin.indexOf('\n', macLine) + 1;
    const parts = {
      stanza: [['age-encryption.org/v1\n-> X25519 '.length, macLine - 1], ['age_stanza', 'age_header']],
      'header MAC': [[macLine + 4, payload - 1], ['age_header_mac', 'age_header']],
      payload: [[payload, bin.length], ['age_payload']],
    };
    const oldLines = armor(bin).split('\n');
    for (const [part, [[start, end], codes]] of Object.entries(parts)) {
      for (let i = 0; i < 24; i++) {
        const bad = Buffer.from(bin);
        bad[start + r.below(end - start)] ^= 1 << r.below(8);
        let tampered = text;
        armor(bad).split('\n').forEach((l, j) => { if (l !== oldLines[j]) tampered = tampered.replace(oldLines[j], l); });
        assert.notEqual(tampered, text);
        const code = outcome(tampered, e, identities, `a flip in the age ${part}`);
        assert.ok(codes.includes(code), `${e.file}: a flip in the age ${part} gave ${code}`);
      }
    }
  }
});

test('a file cut short anywhere is refused, except past the MAC where only unauthenticated metadata is lost', { skip }, () => {
  const r = prng(0x5eed03);
  for (const e of sopsFiles()) {
    const text = readFileSync(corpusPath(e.file), 'latin1');
    const identities = corpusIdentities(e.age_identity_file);
    const macEnd = text.indexOf('\n', /mac"?[:=] ?"?ENC\[/.exec(text).index);
    const cuts = new Set([0, 1, text.length - 1]);
    for (let c = 0; c < text.length; c += 13) cuts.add(c);
    for (let i = 0; i < 60; i++) cuts.add(r.below(text.length));
    const codes = new Set();
    for (const cut of cuts) {
      const code = outcome(text.slice(0, cut), e, identities, `a cut at ${cut}`);
      if (cut < macEnd) assert.notEqual(code, 'ok', `${e.file}: cut at ${cut}, before the end of the MAC, still read`);
      codes.add(code);
    }
    assert.ok(codes.has('missing_metadata') || codes.has('malformed_file'), `${e.file}: ${[...codes]}`);
  }
});

test('fields the SOPS format leaves unauthenticated (version, recipient names, other key services) change nothing read', { skip }, () => {
  const r = prng(0x5eed04);
  for (const e of sopsFiles()) {
    const text = readFileSync(corpusPath(e.file), 'latin1');
    const identities = corpusIdentities(e.age_identity_file);
    const ranges = [...text.matchAll(/(?:version"?[:=] ?"?|recipient"?: "?|sops_age__list_0__map_recipient=)([^"\n]+)/dg)].map((m) => m.indices[1]);
    assert.ok(ranges.length >= 2, e.file);
    for (let i = 0; i < 30; i++) {
      const [start, end] = r.pick(ranges);
      const code = outcome(flipAt(text, start + r.below(end - start), r.below(8)), e, identities, 'a flip in an unauthenticated field');
      assert.ok(code === 'ok' || code === 'malformed_file', `${e.file}: ${code}`);
    }
  }
});
