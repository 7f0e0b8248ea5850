import { baseConfig, defined } from "./fixtures";
import { runProgram, TYPES } from "./harness";
async function main() {
  const t = setTimeout(() => {
    console.log("TIMEOUT");
    process.exit(2);
  }, 20000);
  const r = await runProgram({
    stack: "prod",
    config: defined(baseConfig("prod", { rotate: { SECRET_KEY: "2026-11-25" } })),
    preview: true,
    computedOutputs: (type, name, inputs) =>
      type === TYPES.password && name === "generated-SECRET_KEY" ? { ...inputs } : undefined,
  });
  clearTimeout(t);
  for (const x of r.resources) console.log(x.name, JSON.stringify(x.rawInputs).slice(0, 600));
  console.log(JSON.stringify(r.outputs));
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
