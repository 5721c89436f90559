// Where the secrets file and the age key file are: [secrets] sops_file and
// age_key_file in latchgate.toml (relative to that file), else beside the
// user's latchgate.toml under $XDG_CONFIG_HOME/latchgate (~/.config/latchgate).
import { join } from 'node:path';
import { userConfigDir } from '../config/paths.js';

export const DEFAULT_SOPS_FILE_NAME = 'secrets.enc.yaml';
export const DEFAULT_AGE_KEY_FILE_NAME = 'age-key.txt';

export function secretsLocations(
  config: { secrets?: { sopsFile?: string | undefined; ageKeyFile?: string | undefined } },
  env: NodeJS.ProcessEnv = process.env,
): { sopsFile: string; ageKeyFile: string } {
  const dir = userConfigDir(env);
  return {
    sopsFile: config.secrets?.sopsFile ?? join(dir, DEFAULT_SOPS_FILE_NAME),
    ageKeyFile: config.secrets?.ageKeyFile ?? join(dir, DEFAULT_AGE_KEY_FILE_NAME),
  };
}
