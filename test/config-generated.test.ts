import { test } from "node:test";
import assert from "node:assert/strict";
import { GeneratedInput, parseGenerated } from "../components/config/generated";
import { assertProblem, check } from "./config-check";

const generated = (input: Partial<GeneratedInput>) =>
  check((p) => parseGenerated(p, { generated: undefined, rotate: undefined, ...input }));

test("SECRET_KEY is always generated: 64 characters, safe alphabet, keepers from rotation and rotate", () => {
  const { result, problems } = generated({ rotation: "2026-11-01", rotate: { SECRET_KEY: "2026-11-25" } });
  assert.deepEqual(problems, []);
  assert.deepEqual(result, [
    { key: "SECRET_KEY", length: 64, alphabet: "safe", keepers: { rotation: "2026-11-01", rotate: "2026-11-25" } },
  ]);
});

test("extra generated secrets keep their own length and alphabet, and only their own keeper", () => {
  const { result } = generated({
    generated: { SECRET_KEY: {}, JWT_SIGNING_KEY: { length: 48, alphabet: "alphanumeric" } },
    rotate: { SECRET_KEY: "r1" },
  });
  assert.deepEqual(result[1], {
    key: "JWT_SIGNING_KEY",
    length: 48,
    alphabet: "alphanumeric",
    keepers: { rotation: "", rotate: "" },
  });
});

const cases: Array<[string, Partial<GeneratedInput>, string, RegExp]> = [
  [
    "SECRET_KEY too short",
    { generated: { SECRET_KEY: { length: 40 } } },
    "generated.SECRET_KEY.length",
    /40 is not a whole number from 50 to 512.*Django requires at least 50/,
  ],
  ["other secret too short", { generated: { API_KEY: { length: 31 } } }, "generated.API_KEY.length", /from 32 to 512/],
  ["too long", { generated: { API_KEY: { length: 513 } } }, "generated.API_KEY.length", /from 32 to 512/],
  [
    "unknown alphabet",
    { generated: { SECRET_KEY: { alphabet: "emoji" } } },
    "generated.SECRET_KEY.alphabet",
    /not a known alphabet/,
  ],
  [
    "unknown setting",
    { generated: { SECRET_KEY: { size: 60 } } },
    "generated.SECRET_KEY.size",
    /not a setting of generated\.SECRET_KEY/,
  ],
  ["invalid key", { generated: { "JWT-KEY": {} } }, "generated.JWT-KEY", /not a valid environment variable name/],
  ["spec not an object", { generated: { JWT_KEY: 64 } }, "generated.JWT_KEY", /must be an object/],
  ["not a map", { generated: ["SECRET_KEY"] }, "generated", /must be a map/],
  [
    "rotating a supplied secret",
    { rotate: { DB_PASSWORD: "2026-11-25" } },
    "rotate.DB_PASSWORD",
    /not a generated secret.*it prompts/,
  ],
  ["rotate not a map", { rotate: "2026-11-25" }, "rotate", /must be a map/],
  ["multi-line rotation", { rotation: "a\nb" }, "rotation", /one line/],
];
for (const [title, input, key, what] of cases) {
  test(`generated: ${title} -> ${key}`, () => {
    assertProblem(generated(input).problems, key, what);
  });
}
