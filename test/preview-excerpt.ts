/**
 * Prints the README's preview excerpt: a SECRET_KEY rotation on a two-host prod stack,
 * rendered by test/preview.ts from the program's real resource inputs under Pulumi mocks.
 * test/preview.test.ts checks that the README shows exactly this.
 */
import { baseConfig, defined } from "./fixtures";
import { previewChange } from "./preview";

export const ROTATION = { rotate: { SECRET_KEY: "2026-11-25" } };

export async function secretKeyRotationPreview(): Promise<string> {
  const { text } = await previewChange("prod", defined(baseConfig("prod")), defined(baseConfig("prod", ROTATION)));
  return text;
}

if (require.main === module) {
  secretKeyRotationPreview().then(
    (text) => process.stdout.write(text),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
