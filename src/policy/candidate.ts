// A policy given on the command line (`latchgate policy replay|test
// --policy DIR`), in the layout the gate loads: a directory holding
// latchgate.cedar and latchgate.cedarschema (the Cedar engine, as the
// package's policies/), or policy.wasm built with `opa build -t wasm` (the
// OPA wasm engine; the .wasm file itself may be given too). An OPA server
// keeps its policy out of reach and cannot be given. A policy that does not
// load is refused naming the file and the problem.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CedarEngine, CedarPolicyError } from './cedar.js';
import { describeError, type PolicyEngine } from './engine.js';
import { OpaWasmEngine } from './opa.js';

export const CEDAR_POLICY_FILE = 'latchgate.cedar';
export const CEDAR_SCHEMA_FILE = 'latchgate.cedarschema';
export const OPA_WASM_FILE = 'policy.wasm';

export class PolicyLoadError extends Error {
  constructor(
    /** The file (or directory) at fault. */
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'PolicyLoadError';
  }
}

export interface LoadedPolicy {
  engine: PolicyEngine;
  /** The files it was loaded from. */
  files: string[];
}

/** Loads the policy at `path` (a directory, or a policy.wasm); throws PolicyLoadError. */
export async function loadPolicyAt(path: string): Promise<LoadedPolicy> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new PolicyLoadError(path, 'an OPA server (engine "opa-server") cannot be loaded here: its policy lives in the server, out of reach. Fix: build the policy with `opa build -t wasm -e latchgate/decision` and give the directory holding its policy.wasm');
  }
  const at = resolve(path);
  const st = statSync(at, { throwIfNoEntry: false });
  if (!st) throw new PolicyLoadError(at, `no such file or directory. Fix: give a directory holding ${CEDAR_POLICY_FILE} and ${CEDAR_SCHEMA_FILE} (Cedar), or ${OPA_WASM_FILE} (OPA)`);
  if (st.isFile()) {
    if (at.endsWith('.wasm')) return loadOpa(at);
    throw new PolicyLoadError(at, `not a policy directory or a .wasm file. Fix: give the directory holding ${CEDAR_POLICY_FILE} and ${CEDAR_SCHEMA_FILE}`);
  }
  const cedarFile = join(at, CEDAR_POLICY_FILE);
  const wasmFile = join(at, OPA_WASM_FILE);
  const hasCedar = existsSync(cedarFile);
  const hasWasm = existsSync(wasmFile);
  if (hasCedar && hasWasm) throw new PolicyLoadError(at, `holds both ${CEDAR_POLICY_FILE} and ${OPA_WASM_FILE}: which engine is meant is not clear. Fix: give the .wasm file itself, or a directory with only one of them`);
  if (hasWasm) return loadOpa(wasmFile);
  if (!hasCedar) throw new PolicyLoadError(at, `holds neither ${CEDAR_POLICY_FILE} (Cedar, with ${CEDAR_SCHEMA_FILE}) nor ${OPA_WASM_FILE} (OPA)`);
  const schemaFile = join(at, CEDAR_SCHEMA_FILE);
  if (!existsSync(schemaFile)) throw new PolicyLoadError(schemaFile, `missing: a Cedar policy set is validated against its schema. Fix: put the schema beside ${CEDAR_POLICY_FILE} (the gate's is policies/${CEDAR_SCHEMA_FILE})`);
  try {
    return { engine: CedarEngine.load({ policyDir: at }), files: [cedarFile, schemaFile] };
  } catch (e) {
    if (e instanceof CedarPolicyError) throw new PolicyLoadError(e.source === 'schema' ? schemaFile : cedarFile, e.message);
    throw new PolicyLoadError(cedarFile, describeError(e));
  }
}

async function loadOpa(file: string): Promise<LoadedPolicy> {
  try {
    return { engine: await OpaWasmEngine.load(file), files: [file] };
  } catch (e) {
    throw new PolicyLoadError(file, describeError(e));
  }
}
