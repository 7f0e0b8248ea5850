/**
 * `npm run docs:agent-options`: writes docs/AGENT-OPTIONS.md from the host agent's options table
 * (agent/options.json). test/agent-options.test.ts fails when the checked-in file differs from
 * what this renders, so the docs' option rows cannot drift from what the program and agent use.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { AGENT_OPTIONS, type AgentOption } from "../components/agent-options";

export const AGENT_OPTIONS_DOC = path.join(__dirname, "..", "docs", "AGENT-OPTIONS.md");

function valueOf(o: AgentOption): string {
  switch (o.type) {
    case "bool":
      return "none (a switch)";
    case "int":
      return `whole number ${o.min}-${o.max}`;
    case "enum":
      return (o.values ?? []).map((v) => `\`${v}\``).join(" / ");
    case "string":
      return "text";
    case "list":
      return "text, repeatable";
  }
}

function defaultOf(o: AgentOption): string {
  if (o.type === "bool") return "off";
  if (o.default === null || (Array.isArray(o.default) && o.default.length === 0)) return "none";
  return `\`${String(o.default)}\``;
}

function requiredOf(o: AgentOption): string {
  if (!o.required) return "no";
  return o.type === "list" ? "yes, at least one" : "yes";
}

function sourceOf(o: AgentOption): string {
  return o.sentBy === "operator" ? "by hand only" : `\`${o.config ?? ""}\``;
}

/** The whole file, from the table. */
export function renderAgentOptionsDoc(options: readonly AgentOption[] = AGENT_OPTIONS): string {
  const rows = options.map(
    (o) =>
      `| \`${o.flag}\` | ${valueOf(o)} | ${defaultOf(o)} | ${requiredOf(o)} | ${sourceOf(o)} | ${o.doc.replace(/\|/g, "\\|")} |`,
  );
  return [
    "# Host agent options",
    "",
    "<!-- Generated from agent/options.json by `npm run docs:agent-options`. Do not edit: test/agent-options.test.ts fails when this file differs from the table. -->",
    "",
    "Every rollout command runs the host agent as `bash -s -- OPTIONS` (through `sudo -n` for a",
    "non-root login), with the agent, the env file and its end marker on stdin; no option carries a",
    "secret. The options come from one table, [agent/options.json](../agent/options.json) (its format:",
    "[agent/README.md](../agent/README.md)): the program builds each command from it",
    "(components/agent-options.ts), the config takes its ranges and defaults from it, and a unit test",
    "checks that the agent accepts exactly these options, ranges and defaults. Options are listed in the",
    'order a command carries them. "From" is the stack config key the program sends it for.',
    "",
    "| option | value | default | required | from | what it does |",
    "|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

if (require.main === module) {
  const text = renderAgentOptionsDoc();
  if (process.argv.includes("--write")) {
    fs.writeFileSync(AGENT_OPTIONS_DOC, text);
    console.log(`wrote ${path.relative(process.cwd(), AGENT_OPTIONS_DOC)}`);
  } else {
    process.stdout.write(text);
  }
}
