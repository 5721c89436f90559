// The action manifest's own JSON Schema (draft 2020-12) and its defaults.
// Every object is closed (additionalProperties: false): an unknown or
// misspelt field is an error, never silently ignored. Each leaf carries a
// `description` that the registry quotes as "expected ..." in its errors, so
// the schema is also the source of the error wording.
import { FS_OPERATIONS } from '../providers/fs-operations.js';
import type { ActionManifest } from './types.js';

export const MANIFEST_SCHEMA_ID = 'https://latchgate.dev/schemas/action-manifest.schema.json';

export const RISK_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
export const VERIFIER_KINDS = ['http_status', 'fs_hash', 'none'] as const;
export const EGRESS_PROFILES = ['none', 'proxy_allowlist'] as const;
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const;
export { FS_OPERATIONS };

const KIB = 1024;
const MIB = 1024 * 1024;

/** Upstream §3.5 defaults; applied by applyManifestDefaults after validation. */
export const MANIFEST_DEFAULTS = {
  resource_limits: {
    fuel: 1_000_000,
    memory_mb: 64,
    timeout_seconds: 30,
    max_io_calls: 10,
    max_host_response_bytes: 10 * MIB,
  },
  io: { max_request_bytes: 64 * KIB, max_response_bytes: 1 * MIB },
  egress: { profile: 'none' as const },
  fs: { max_file_bytes: 1 * MIB },
} as const;

/** Upper bounds: a typo such as an extra zero is caught at load time. */
export const MANIFEST_LIMITS = {
  fuel: Number.MAX_SAFE_INTEGER,
  memory_mb: 4096, // wasm32 linear memory tops out at 4 GiB
  timeout_seconds: 3600,
  max_io_calls: 10_000,
  bytes: 1024 * MIB,
} as const;

const posInt = (max: number) => ({ type: 'integer', exclusiveMinimum: 0, maximum: max, description: 'an integer > 0' });

const stringList = (item: Record<string, unknown>, description: string) => ({
  type: 'array',
  items: { type: 'string', ...item },
  uniqueItems: true,
  description,
});

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

export const MANIFEST_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: MANIFEST_SCHEMA_ID,
  title: 'latchgate action manifest',
  description: 'a mapping of manifest fields',
  type: 'object',
  additionalProperties: false,
  required: ['action_id', 'version', 'provider_module_digest', 'io', 'risk_level', 'verifier_kind'],
  properties: {
    action_id: {
      type: 'string',
      pattern: '^[a-z][a-z0-9_]{1,63}$',
      description: 'a lowercase id: a letter, then 1 to 63 letters, digits or "_"',
    },
    version: {
      type: 'string',
      pattern: '^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$',
      description: 'a semantic version such as "1.0.0" (quote it in YAML)',
    },
    tags: stringList({ pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$', description: 'a lowercase tag' }, 'a list of distinct tags'),
    provider_module_digest: {
      type: 'string',
      pattern: '^(sha256:[0-9a-f]{64}|builtin:[a-z_]+)$',
      description: '"sha256:" and 64 lowercase hex digits, or "builtin:<name>"',
    },
    provider_source: { type: 'string', minLength: 1, maxLength: 1024, description: 'a provider file name' },
    required_imports: stringList(
      { pattern: '^latchgate:io/[a-z][a-z0-9_-]*$', description: 'an import such as "latchgate:io/http"' },
      'a list of distinct imports such as "latchgate:io/http"',
    ),
    template: {
      type: 'object',
      additionalProperties: false,
      required: ['method', 'url_template'],
      description: 'a mapping with method, url_template, headers and body_template',
      properties: {
        method: { enum: [...HTTP_METHODS], description: `one of ${HTTP_METHODS.join(', ')}` },
        url_template: { type: 'string', minLength: 1, maxLength: 4096, description: 'a URL template such as "https://api.example.com/items/{{id}}"' },
        headers: {
          type: 'object',
          propertyNames: { pattern: HEADER_NAME, description: 'an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)' },
          additionalProperties: { type: 'string', maxLength: 8192, description: 'a header value (a string)' },
          description: 'a mapping of header names to string values',
        },
        body_template: { description: 'any JSON value (placeholders "{{var}}" allowed in strings)' },
      },
    },
    io: {
      type: 'object',
      additionalProperties: false,
      required: ['request_schema'],
      description: 'a mapping with request_schema, response_schema, max_request_bytes and max_response_bytes',
      properties: {
        request_schema: {
          type: ['object', 'string'],
          minLength: 1,
          description: 'an inline JSON Schema (a mapping) or a relative path to a .json schema file',
        },
        response_schema: {
          type: ['object', 'string'],
          minLength: 1,
          description: 'an inline JSON Schema (a mapping) or a relative path to a .json schema file',
        },
        max_request_bytes: posInt(MANIFEST_LIMITS.bytes),
        max_response_bytes: posInt(MANIFEST_LIMITS.bytes),
      },
    },
    resource_limits: {
      type: 'object',
      additionalProperties: false,
      description: 'a mapping with fuel, memory_mb, timeout_seconds, max_io_calls and max_host_response_bytes',
      properties: {
        fuel: posInt(MANIFEST_LIMITS.fuel),
        memory_mb: posInt(MANIFEST_LIMITS.memory_mb),
        timeout_seconds: posInt(MANIFEST_LIMITS.timeout_seconds),
        max_io_calls: {
          type: 'integer',
          minimum: 0,
          maximum: MANIFEST_LIMITS.max_io_calls,
          description: 'an integer >= 0',
        },
        max_host_response_bytes: posInt(MANIFEST_LIMITS.bytes),
      },
    },
    egress: {
      type: 'object',
      additionalProperties: false,
      description: 'a mapping with profile, allowed_domains and allowed_methods',
      properties: {
        profile: { enum: [...EGRESS_PROFILES], description: `one of ${EGRESS_PROFILES.join(', ')}` },
        allowed_domains: stringList({ minLength: 1, maxLength: 253, description: 'a host name such as "api.example.com" or "*.example.com"' }, 'a list of distinct host names'),
        allowed_methods: {
          type: 'array',
          items: { enum: [...HTTP_METHODS], description: `one of ${HTTP_METHODS.join(', ')}` },
          uniqueItems: true,
          description: 'a list of distinct HTTP methods',
        },
      },
    },
    secrets: {
      type: 'array',
      description: 'a list of {name, required} mappings',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        description: 'a mapping with name and required',
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$', description: 'a secret name: letters, digits and "_", not starting with a digit' },
          required: { type: 'boolean', description: 'true or false' },
        },
      },
    },
    risk_level: { enum: [...RISK_LEVELS], description: `one of ${RISK_LEVELS.join(', ')}` },
    verifier_kind: { enum: [...VERIFIER_KINDS], description: `one of ${VERIFIER_KINDS.join(', ')} (say "none" to declare the effect unverifiable)` },
    verification_config: {
      type: 'object',
      additionalProperties: false,
      description: 'a mapping with required_fields and expected_status',
      properties: {
        required_fields: stringList({ minLength: 1, maxLength: 256, description: 'a response field name' }, 'a list of distinct response field names'),
        expected_status: {
          type: 'array',
          items: { type: 'integer', minimum: 100, maximum: 599, description: 'an HTTP status code from 100 to 599' },
          uniqueItems: true,
          description: 'a list of distinct HTTP status codes',
        },
      },
    },
    declared_side_effects: stringList(
      { pattern: '^[a-z][a-z0-9]*_[a-z][a-z0-9_]*$', description: 'a sink such as "http_read", "http_write" or "fs_write"' },
      'a list of distinct sinks such as "http_read"',
    ),
    required_scopes: stringList({ pattern: '^[A-Za-z0-9][A-Za-z0-9:_./-]{0,127}$', description: 'a scope such as "tools:call"' }, 'a list of distinct scopes'),
    fs: {
      type: 'object',
      additionalProperties: false,
      required: ['allowed_operations'],
      description: 'a mapping with allowed_operations, allowed_paths, denied_paths and max_file_bytes',
      properties: {
        allowed_operations: {
          type: 'array',
          items: { enum: [...FS_OPERATIONS], description: `one of ${FS_OPERATIONS.join(', ')}` },
          minItems: 1,
          uniqueItems: true,
          description: `a non-empty list of distinct operations (${FS_OPERATIONS.join(', ')})`,
        },
        allowed_paths: stringList({ minLength: 1, maxLength: 4096, description: 'a path glob such as "src/**"' }, 'a list of distinct path globs'),
        denied_paths: stringList({ minLength: 1, maxLength: 4096, description: 'a path glob such as "**/.env"' }, 'a list of distinct path globs'),
        max_file_bytes: posInt(MANIFEST_LIMITS.bytes),
      },
    },
    cost: { type: 'integer', minimum: 0, maximum: 1_000_000, description: 'an integer >= 0 (budget cost units per call)' },
  },
  allOf: [
    {
      // The built-in HTTP provider has nothing to do without a template.
      if: { required: ['provider_module_digest'], properties: { provider_module_digest: { const: 'builtin:http_api' } } },
      then: { required: ['template'] },
    },
    {
      if: { required: ['provider_module_digest'], properties: { provider_module_digest: { const: 'builtin:fs' } } },
      then: { required: ['fs'] },
    },
    {
      // Upstream: a high or critical HTTP write verified by status must
      // name the response fields that prove the effect.
      if: {
        required: ['risk_level', 'verifier_kind', 'declared_side_effects'],
        properties: {
          risk_level: { enum: ['high', 'critical'] },
          verifier_kind: { const: 'http_status' },
          declared_side_effects: { type: 'array', contains: { const: 'http_write' } },
        },
      },
      then: {
        required: ['verification_config'],
        properties: { verification_config: { type: 'object', required: ['required_fields'] } },
      },
    },
  ],
} as const;

/** The manifest as validated against MANIFEST_SCHEMA, schemas not yet resolved. */
export type RawManifest = Omit<ActionManifest, 'io' | 'tags' | 'required_imports' | 'resource_limits' | 'egress' | 'secrets' | 'declared_side_effects' | 'required_scopes' | 'fs' | 'template'> & {
  tags?: string[];
  required_imports?: string[];
  template?: { method: string; url_template: string; headers?: Record<string, string>; body_template?: unknown };
  io: {
    request_schema: Record<string, unknown> | string;
    response_schema?: Record<string, unknown> | string;
    max_request_bytes?: number;
    max_response_bytes?: number;
  };
  resource_limits?: Partial<ActionManifest['resource_limits']>;
  egress?: Partial<ActionManifest['egress']>;
  secrets?: { name: string; required?: boolean }[];
  declared_side_effects?: string[];
  required_scopes?: string[];
  fs?: { allowed_operations: string[]; allowed_paths?: string[]; denied_paths?: string[]; max_file_bytes?: number };
};

/**
 * The defaulted ActionManifest from a schema-valid raw manifest and its
 * resolved (inlined) request and response schemas. Keys are written in a
 * fixed order and absent optional fields stay absent, so the result hashes
 * the same whichever way the YAML spelled it.
 */
export function applyManifestDefaults(
  raw: RawManifest,
  requestSchema: Record<string, unknown>,
  responseSchema?: Record<string, unknown>,
): ActionManifest {
  const d = MANIFEST_DEFAULTS;
  const m: ActionManifest = {
    action_id: raw.action_id,
    version: raw.version,
    tags: [...(raw.tags ?? [])],
    provider_module_digest: raw.provider_module_digest,
    required_imports: [...(raw.required_imports ?? [])],
    io: {
      request_schema: requestSchema,
      max_request_bytes: raw.io.max_request_bytes ?? d.io.max_request_bytes,
      max_response_bytes: raw.io.max_response_bytes ?? d.io.max_response_bytes,
    },
    resource_limits: {
      fuel: raw.resource_limits?.fuel ?? d.resource_limits.fuel,
      memory_mb: raw.resource_limits?.memory_mb ?? d.resource_limits.memory_mb,
      timeout_seconds: raw.resource_limits?.timeout_seconds ?? d.resource_limits.timeout_seconds,
      max_io_calls: raw.resource_limits?.max_io_calls ?? d.resource_limits.max_io_calls,
      max_host_response_bytes: raw.resource_limits?.max_host_response_bytes ?? d.resource_limits.max_host_response_bytes,
    },
    egress: {
      profile: raw.egress?.profile ?? d.egress.profile,
      allowed_domains: [...(raw.egress?.allowed_domains ?? [])],
      allowed_methods: [...(raw.egress?.allowed_methods ?? [])],
    },
    secrets: (raw.secrets ?? []).map((s) => ({ name: s.name, required: s.required ?? false })),
    risk_level: raw.risk_level,
    verifier_kind: raw.verifier_kind,
    declared_side_effects: [...(raw.declared_side_effects ?? [])],
    required_scopes: [...(raw.required_scopes ?? [])],
  };
  if (responseSchema !== undefined) m.io.response_schema = responseSchema;
  if (raw.provider_source !== undefined) m.provider_source = raw.provider_source;
  if (raw.template !== undefined) {
    m.template = { method: raw.template.method, url_template: raw.template.url_template, headers: { ...(raw.template.headers ?? {}) } };
    if (raw.template.body_template !== undefined) m.template.body_template = raw.template.body_template;
  }
  if (raw.verification_config !== undefined) {
    m.verification_config = {};
    if (raw.verification_config.required_fields !== undefined) m.verification_config.required_fields = [...raw.verification_config.required_fields];
    if (raw.verification_config.expected_status !== undefined) m.verification_config.expected_status = [...raw.verification_config.expected_status];
  }
  if (raw.fs !== undefined) {
    m.fs = {
      allowed_operations: [...raw.fs.allowed_operations],
      allowed_paths: [...(raw.fs.allowed_paths ?? [])],
      denied_paths: [...(raw.fs.denied_paths ?? [])],
      max_file_bytes: raw.fs.max_file_bytes ?? d.fs.max_file_bytes,
    };
  }
  if (raw.cost !== undefined) m.cost = raw.cost;
  return m;
}
