// Type-aware lint for the program, its tests and the policy pack.
import tseslint from "typescript-eslint";
import pulumi from "@pulumi/eslint-plugin";

export default tseslint.config(
  { ignores: ["node_modules/", "bin/", "**/*.js", "**/*.mjs"] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { pulumi },
    rules: {
      // An Output in a plain template literal prints "Calling [toString] on an Output<T>".
      "pulumi/no-output-in-template-literal": "error",
      "pulumi/no-output-instance-in-template-literal": "error",
      // `as any` on a connection once printed a private key in an error (pulumi-command#773).
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["test/**/*.ts", "policy/tests/**/*.ts"],
    rules: {
      // node:test's `test()` returns a promise the runner awaits itself.
      "@typescript-eslint/no-floating-promises": "off",
    },
  },
);
