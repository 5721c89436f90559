// DNS messages as the box's resolver needs them (RFC 1035 §4.1): the header
// and the one question of a query, its EDNS(0) OPT record if any (RFC 6891),
// and an answer that carries no record, only a response code and, when the
// query spoke EDNS, an Extended DNS Error (RFC 8914) whose text says why.
//
// The bytes come from the box: every length is checked against the buffer, a
// name is read without compression (a question has nothing before it to point
// back to), and whatever does not fit is a refusal with its reason, never a
// throw.

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** RFC 6891 §9: an OPT version this server does not implement (extended RCODE 16). */
const BADVERS = 16;
/** RFC 8914 §4.19: the client is not authorised to be answered. */
export const EDE_PROHIBITED = 18;
const TYPE_OPT = 41;
/** The UDP payload size this server says it takes (RFC 9715's default). */
const OUR_UDP_SIZE = 1232;
/** Every client takes an answer of this size (RFC 1035 §4.2.1); EXTRA-TEXT is cut to fit it. */
export const MAX_ANSWER = 512;
/** OPT plus at most a TSIG or SIG(0): more additional records than this is not a stub's query. */
const MAX_ADDITIONAL = 4;

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 35: 'NAPTR',
  43: 'DS', 48: 'DNSKEY', 64: 'SVCB', 65: 'HTTPS', 99: 'SPF', 255: 'ANY', 257: 'CAA',
};

/** A type number in the form RFC 3597 §5 gives unknown ones (TYPE65534). */
export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

export interface DnsQuestion {
  /** Presentation form (RFC 1035 §5.1), lower-cased: LDH bytes as they are, any other as \DDD; the root is ".". */
  name: string;
  type: number;
  class: number;
  /** The question's bytes, echoed in the answer. */
  wire: Uint8Array;
}

export interface DnsQuery {
  id: number;
  opcode: number;
  /** Recursion desired: copied into the answer. */
  rd: boolean;
  question: DnsQuestion;
  /** The query's OPT record, when it has one. */
  edns: { udpSize: number; version: number } | null;
}

/**
 * What a packet is to the resolver: a query it can answer, one it answers
 * with an error code (id and whatever of the query could be read), or bytes
 * it drops unanswered (too short for a header, or a response: answering
 * those would let a box bounce packets between resolvers).
 */
export type ParsedPacket =
  | { kind: 'query'; query: DnsQuery }
  | { kind: 'error'; rcode: number; reason: string; id: number; opcode: number; rd: boolean; question: DnsQuestion | null; edns: DnsQuery['edns'] }
  | { kind: 'drop'; reason: string };

class Malformed extends Error {}

/** Reads one name at offset without compression; returns it and the offset after it. */
function readName(b: Uint8Array, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  for (;;) {
    if (at >= b.length) throw new Malformed('the name runs past the end of the packet');
    const len = b[at]!;
    if (len === 0) {
      at++;
      break;
    }
    if (len & 0xc0) throw new Malformed(len >= 0xc0 ? 'a compression pointer in a question' : 'a reserved label type');
    if (at + 1 + len > b.length) throw new Malformed('a label runs past the end of the packet');
    labels.push(labelText(b.subarray(at + 1, at + 1 + len)));
    at += 1 + len;
    if (at - offset > 255) throw new Malformed('the name is longer than 255 bytes');
  }
  if (at - offset > 255) throw new Malformed('the name is longer than 255 bytes');
  return { name: labels.length === 0 ? '.' : labels.join('.'), end: at };
}

/** A label in presentation form: letters (lower-cased), digits, '-' and '_' as they are, anything else \DDD. */
function labelText(bytes: Uint8Array): string {
  let s = '';
  for (const c of bytes) {
    const lower = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
    const plain = (lower >= 0x61 && lower <= 0x7a) || (lower >= 0x30 && lower <= 0x39) || lower === 0x2d || lower === 0x5f;
    s += plain ? String.fromCharCode(lower) : `\\${String(c).padStart(3, '0')}`;
  }
  return s;
}

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/** Parses a packet from the box; never throws. */
export function parseQuery(b: Uint8Array): ParsedPacket {
  if (b.length < 12) return { kind: 'drop', reason: 'shorter than a DNS header' };
  const id = u16(b, 0);
  const flags = u16(b, 2);
  if (flags & 0x8000) return { kind: 'drop', reason: 'a response, not a query' };
  const opcode = (flags >> 11) & 0xf;
  const rd = (flags & 0x0100) !== 0;
  const [qd, an, ns, ar] = [u16(b, 4), u16(b, 6), u16(b, 8), u16(b, 10)];
  let question: DnsQuestion | null = null;
  let edns: DnsQuery['edns'] = null;
  const error = (rcode: number, reason: string): ParsedPacket => ({ kind: 'error', rcode, reason, id, opcode, rd, question, edns });
  try {
    if (qd !== 1) throw new Malformed(`${qd} questions (a query has one)`);
    const { name, end } = readName(b, 12);
    if (end + 4 > b.length) throw new Malformed('the question runs past the end of the packet');
    question = { name, type: u16(b, end), class: u16(b, end + 2), wire: b.slice(12, end + 4) };
    if (an !== 0 || ns !== 0) throw new Malformed('answer or authority records in a query');
    if (ar > MAX_ADDITIONAL) throw new Malformed(`${ar} additional records`);
    let at = end + 4;
    for (let i = 0; i < ar; i++) {
      const rr = readName(b, at);
      if (rr.end + 10 > b.length) throw new Malformed('an additional record runs past the end of the packet');
      const type = u16(b, rr.end);
      const rdlength = u16(b, rr.end + 8);
      const next = rr.end + 10 + rdlength;
      if (next > b.length) throw new Malformed('record data runs past the end of the packet');
      if (type === TYPE_OPT) {
        if (edns) throw new Malformed('more than one OPT record');
        if (rr.name !== '.') throw new Malformed('an OPT record not owned by the root');
        edns = { udpSize: Math.max(512, u16(b, rr.end + 2)), version: (u32(b, rr.end + 4) >>> 16) & 0xff };
      }
      at = next;
    }
    if (at !== b.length) throw new Malformed(`${b.length - at} bytes after the last record`);
  } catch (e) {
    if (!(e instanceof Malformed)) throw e;
    return error(RCODE.FORMERR, e.message);
  }
  if (opcode !== 0) return error(RCODE.NOTIMP, `opcode ${opcode} (only QUERY is served)`);
  if (edns && edns.version !== 0) return error(BADVERS, `EDNS version ${edns.version}`);
  return { kind: 'query', query: { id, opcode, rd, question: question!, edns } };
}

/**
 * The answer to a query (or to what could be read of one): no records, the
 * response code, and for a query with an OPT record our own OPT carrying an
 * Extended DNS Error with text (printable ASCII, cut so the answer fits MAX_ANSWER).
 */
export function buildAnswer(
  q: { id: number; opcode: number; rd: boolean; question: DnsQuestion | null; edns: DnsQuery['edns'] },
  rcode: number,
  ede?: { code: number; text: string },
): Uint8Array {
  const qlen = q.question ? q.question.wire.length : 0;
  // Header, question, OPT and the option's own fields; what is left is the text's (at least 200 bytes: a question is at most 259).
  const room = MAX_ANSWER - (12 + qlen + 11 + 6);
  const text = ede ? Buffer.from(ede.text.replace(/[^\x20-\x7e]/g, '?').slice(0, room), 'ascii') : Buffer.alloc(0);
  const option = ede && q.edns && rcode !== BADVERS ? 4 + 2 + text.length : 0;
  const opt = q.edns ? 11 + option : 0;
  const out = Buffer.alloc(12 + qlen + opt);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(0x8000 | ((q.opcode & 0xf) << 11) | (q.rd ? 0x0100 : 0) | (rcode & 0xf), 2);
  out.writeUInt16BE(q.question ? 1 : 0, 4);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  if (q.question) out.set(q.question.wire, 12);
  if (q.edns) {
    let at = 12 + qlen;
    out[at] = 0; // the root owns OPT
    out.writeUInt16BE(TYPE_OPT, at + 1);
    out.writeUInt16BE(OUR_UDP_SIZE, at + 3);
    out.writeUInt32BE(((rcode >> 4) & 0xff) << 24, at + 5); // extended RCODE, version 0, no DO
    out.writeUInt16BE(option, at + 9);
    at += 11;
    if (option > 0) {
      out.writeUInt16BE(15, at); // OPTION-CODE: Extended DNS Error
      out.writeUInt16BE(2 + text.length, at + 2);
      out.writeUInt16BE(ede!.code, at + 4);
      out.set(text, at + 6);
    }
  }
  return out;
}
