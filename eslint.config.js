// Type-aware lint: the rules that matter most here are the promise rules —
// a floating promise in a read loop is a silently lost tool call.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // bench/redis-clients is a plain-JS measurement of two client libraries, kept as it was run.
  { ignores: ["dist/", "node_modules/", "eslint.config.js", "bench/redis-clients/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test registers tests through promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "describe", "it", "suite"] }] },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-empty": ["error", { allowEmptyCatch: false }],
    },
  },
);
