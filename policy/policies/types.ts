import { envKeyOfGeneratedResource } from "../../components/secret-rules";

/** Resource type tokens this pack looks at, as the engine reports them. */
export const REMOTE_COMMAND = "command:remote:Command";
const LOCAL_COMMAND = "command:local:Command";
export const COMMAND_TYPES: readonly string[] = [REMOTE_COMMAND, LOCAL_COMMAND];
export const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";
export const SM_SECRET = "aws:secretsmanager/secret:Secret";
export const SM_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion";

/** Command inputs that end up on a command line, in the engine log or in the state in clear text. */
export const COMMAND_TEXT_FIELDS = ["create", "update", "delete", "environment", "triggers"] as const;

/**
 * The env key a generated secret is for: RandomPassword `generated-SECRET_KEY` -> `SECRET_KEY`
 * (the program's own naming rule); any other RandomPassword is named as it is.
 */
export function generatedEnvKey(resourceName: string): string {
  return envKeyOfGeneratedResource(resourceName) ?? resourceName;
}
