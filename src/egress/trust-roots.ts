// The certificates outbound TLS trusts: Node's bundled roots, the system
// bundle and NODE_EXTRA_CA_CERTS, plus PEM certificates an operator adds
// (extra_ca_certs, a route's ca_file). Shared by the credential proxy and the
// providers' HTTP host, so both trust, and refuse, the same upstreams.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { LaunchError } from '../core/errors.js';

const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/ssl/cert.pem'];

/** Node's bundled roots, the system bundle (first found) and NODE_EXTRA_CA_CERTS. */
export function defaultTrust(): string[] {
  const out = [...tls.rootCertificates];
  for (const p of SYSTEM_BUNDLES) {
    try {
      out.push(readFileSync(p, 'utf8'));
      break;
    } catch {
      /* next */
    }
  }
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      out.push(readFileSync(extra, 'utf8'));
    } catch {
      /* Node ignores an unreadable one too (with a warning at startup) */
    }
  }
  return out;
}

/**
 * The system's CA bundle as tools in the box read it: the first system
 * bundle found, else Node's bundled roots (path null).
 */
export function systemCaBundle(): { path: string | null; pem: string } {
  for (const p of SYSTEM_BUNDLES) {
    try {
      return { path: p, pem: readFileSync(p, 'utf8') };
    } catch {
      /* next */
    }
  }
  return { path: null, pem: `${tls.rootCertificates.join('\n')}\n` };
}

/**
 * The extra_ca_certs files, read and checked: a file that cannot be read, or
 * holds no well-formed certificate, is a LaunchError naming field[i] and the
 * file. Returns each file's certificates, in order.
 */
export function readExtraCaFiles(files: readonly string[], field: string): string[][] {
  return files.map((f, i) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new LaunchError(`${field}[${i}]: ${f} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path or remove the entry`);
    }
    let certs: string[];
    try {
      certs = parsePemCerts(text);
    } catch (e) {
      throw new LaunchError(`${field}[${i}]: ${f} holds a malformed certificate (${(e as Error).message})`);
    }
    if (certs.length === 0) throw new LaunchError(`${field}[${i}]: ${f} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return certs;
  });
}

/** PEM text -> its certificates (each parsed, so a broken one is an error here, not at the first request). */
export function parsePemCerts(pem: string): string[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  for (const b of blocks) new X509Certificate(b); // throws on a malformed certificate
  return blocks;
}

/** Error codes (and message words) of a failed TLS handshake or certificate check, as Node reports them. */
export const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME|EPROTO|CRL|CHAIN|SIGNATURE/;

/**
 * The certificates of each PEM text in pems (extra_ca_certs): every one must
 * hold at least one well-formed certificate, else a LaunchError naming
 * source[i] and what was expected.
 */
export function extraCaCerts(pems: readonly string[], source = 'extra_ca_certs'): string[] {
  const out: string[] = [];
  pems.forEach((pem, i) => {
    let certs: string[];
    try {
      certs = typeof pem === 'string' ? parsePemCerts(pem) : [];
    } catch (e) {
      throw new LaunchError(`${source}[${i}]: malformed certificate (${(e as Error).message})`);
    }
    if (certs.length === 0) throw new LaunchError(`${source}[${i}]: no PEM certificate (-----BEGIN CERTIFICATE-----) found`);
    out.push(...certs);
  });
  return out;
}
