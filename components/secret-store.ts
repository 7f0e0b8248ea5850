/**
 * SecretStore: one AWS Secrets Manager secret per stack holding the whole env
 * document as JSON. Every change writes a new secret version; old versions are
 * left to AWS's own staging labels (AWSCURRENT moves, AWSPREVIOUS follows), so
 * the previous document stays restorable.
 */
import * as pulumi from "@pulumi/pulumi";
// The secretsmanager module only: `@pulumi/aws` as a whole sets up every AWS service module at load
// time, measurable in each of a `pulumi up`'s two program runs (issue 21).
import * as secretsmanager from "@pulumi/aws/secretsmanager";

export interface SecretStoreArgs {
  /** Secrets Manager name, e.g. pms-backend/prod. */
  secretName: string;
  /** The env document as JSON. Must be a secret Output. */
  document: pulumi.Input<string>;
  /** Customer-managed KMS key (id, ARN or alias). Default: the AWS-managed key. */
  kmsKeyId?: string;
  /** Days a deleted secret stays recoverable (7-30). */
  recoveryWindowInDays: number;
  /** Tags naming the stack and project. */
  tags: Record<string, string>;
  description?: string;
}

export class SecretStore extends pulumi.ComponentResource {
  readonly secret: secretsmanager.Secret;
  readonly version: secretsmanager.SecretVersion;
  readonly arn: pulumi.Output<string>;
  readonly versionId: pulumi.Output<string>;

  constructor(name: string, args: SecretStoreArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pms:secrets:SecretStore", name, {}, opts);
    this.secret = new secretsmanager.Secret(
      `${name}-secret`,
      {
        name: args.secretName,
        description: args.description,
        kmsKeyId: args.kmsKeyId,
        recoveryWindowInDays: args.recoveryWindowInDays,
        tags: args.tags,
      },
      { parent: this },
    );
    this.version = new secretsmanager.SecretVersion(
      `${name}-version`,
      { secretId: this.secret.id, secretString: pulumi.secret(args.document) },
      {
        parent: this,
        // A changed document replaces the version (create, then delete the old one). The
        // provider's delete strips the old version's staging labels, which would lose
        // AWSPREVIOUS; retaining it leaves version history to Secrets Manager itself.
        retainOnDelete: true,
      },
    );
    this.arn = this.secret.arn;
    this.versionId = this.version.versionId;
    this.registerOutputs({ arn: this.arn, versionId: this.versionId });
  }
}
