/**
 * Renders what `pulumi preview --diff` shows for a change, from two runs of the
 * real program under mocks: `before` (the deployed state, a normal run) and
 * `after` (the change, run with `preview: true`). Layout and rules follow the
 * engine's display code (pkg/engine/diff.go): a resource tree with a plan column,
 * then per changed resource `<type>: (<op>)`, its URN and the changed inputs;
 * secret inputs print as `[secret]`, values not known before the engine creates
 * a resource as `output<string>`, empty strings are not printed. Resource IDs
 * are left out: under mocks they are made up.
 */
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../components/config";
import { isSecretWrapper, RecordedResource, RunOptions, runProgram, RunResult, TYPES, unwrap } from "./harness";

type Op = "same" | "create" | "update" | "replace";
const SYMBOL: Record<Op, string> = { same: "  ", create: "+ ", update: "~ ", replace: "+-" };
const STACK = "pulumi:pulumi:Stack";

/** A secret input: compared by value, never printed. */
class Secret {
  constructor(readonly value: unknown) {}
}
const UNKNOWN_VIEW = Symbol("output<string>");

/** Inputs as the display sees them: secrets masked, unknowns (mock inputs or stack outputs) marked. */
function view(v: unknown): unknown {
  if (isSecretWrapper(v)) return new Secret(unwrap(v.value));
  if (pulumi.isUnknown(v) || v === pulumi.runtime.unknownValue) return UNKNOWN_VIEW;
  if (Array.isArray(v)) return v.map(view);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, view(x)]));
  return v;
}
const isUnknownView = (v: unknown): boolean =>
  v === UNKNOWN_VIEW || (v instanceof Secret && pulumi.containsUnknowns(v.value));
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Secret);
const isPrimitive = (v: unknown): boolean => !Array.isArray(v) && !isObject(v);
/** Unknown never equals anything: the engine cannot tell, so it plans a change. */
function same(a: unknown, b: unknown): boolean {
  if (isUnknownView(a) || isUnknownView(b)) return false;
  const plain = (x: unknown) => JSON.stringify(x instanceof Secret ? ["secret", x.value] : x, (_k, y: unknown) => y);
  return plain(a) === plain(b);
}
const printable = (v: unknown): boolean =>
  v !== undefined &&
  v !== null &&
  v !== "" &&
  !(Array.isArray(v) && v.length === 0) &&
  !(isObject(v) && !Object.keys(v).length);
function primitive(v: unknown): string {
  if (v instanceof Secret) return "[secret]";
  if (v === UNKNOWN_VIEW) return "output<string>";
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}
/** Four spaces per level; a prefixed line puts its symbol in the last two. */
const pad = (indent: number, symbol?: string): string =>
  symbol ? "    ".repeat(indent).slice(0, -2) + symbol : "    ".repeat(indent);

class Out {
  text = "";
  w(...parts: string[]): void {
    this.text += parts.join("");
  }
  value(v: unknown, indent: number, symbol?: string): void {
    if (isPrimitive(v)) this.w(primitive(v));
    else if (Array.isArray(v)) {
      this.w("[\n");
      v.forEach((x, i) => {
        this.w(pad(indent, symbol), `    [${i}]: `);
        this.value(x, indent + 1, symbol);
      });
      this.w(pad(indent), "]");
    } else {
      this.w("{\n");
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      const width = Math.max(...keys.map((k) => k.length));
      for (const k of keys.filter((x) => printable(obj[x]))) {
        this.w(pad(indent + 1, symbol), k.padEnd(width), ": ");
        this.value(obj[k], indent + 1, symbol);
      }
      this.w(pad(indent), "}");
    }
    this.w("\n");
  }
  /** One property (or array element) of a diff; `title(symbol)` returns its label at `indent`. */
  diff(title: (symbol?: string) => string, a: unknown, b: unknown, indent: number, showSame = true): void {
    if (same(a, b)) {
      if (!showSame || !printable(b)) return;
      this.w(title());
      this.value(b, indent);
    } else if (Array.isArray(a) && Array.isArray(b)) {
      this.w(title("~ "), "[\n");
      for (let i = 0; i < Math.max(a.length, b.length); i++)
        this.diff((s) => pad(indent + 1, s) + `[${i}]: `, a[i], b[i], indent + 2);
      this.w(pad(indent), "]\n");
    } else if (isObject(a) && isObject(b)) {
      this.w(title("~ "), "{\n");
      this.object(a, b, indent + 1);
      this.w(pad(indent), "}\n");
    } else if (printable(a) && printable(b) && isPrimitive(a) && isPrimitive(b)) {
      this.w(title("~ "), primitive(a), " => ", primitive(b), "\n");
    } else {
      for (const [v, symbol] of [
        [a, "- "],
        [b, "+ "],
      ] as const) {
        if (!printable(v)) continue;
        this.w(title(symbol));
        this.value(v, indent, symbol);
      }
    }
  }
  object(a: Record<string, unknown>, b: Record<string, unknown>, indent: number, showSame = true): void {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    const width = Math.max(...keys.map((k) => k.length));
    for (const k of keys) this.diff((s) => `${pad(indent, s)}${k.padEnd(width)}: `, a[k], b[k], indent, showSame);
  }
}

interface Step {
  res: RecordedResource;
  op: Op;
  changed: string[];
  depth: number;
  last: boolean[];
}

/** What the engine plans for one resource, from the providers' replacement rules this program relies on. */
function plan(res: RecordedResource, old: RecordedResource | undefined): Pick<Step, "op" | "changed"> {
  if (!old) return { op: "create", changed: Object.keys(res.rawInputs) };
  const a = view(old.rawInputs) as Record<string, unknown>;
  const b = view(res.rawInputs) as Record<string, unknown>;
  const changed = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !same(a[k], b[k])).sort();
  if (!changed.length) return { op: "same", changed };
  const replaces =
    res.type === TYPES.password || // any input change of a RandomPassword replaces it
    (res.type === TYPES.version && changed.includes("secretString")) ||
    (res.type === TYPES.command && changed.includes("triggers"));
  return { op: replaces ? "replace" : "update", changed };
}

export function renderPreview(before: RunResult, after: RunResult): string {
  const stack = after.resources[0]?.urn.split("::")[0].replace("urn:pulumi:", "") ?? "";
  const steps: Step[] = [];
  const walk = (parent: string, depth: number, last: boolean[]) => {
    const kids = after.resources.filter((r) => r.options.parent === parent);
    kids.forEach((res, i) => {
      const old = before.resources.find((r) => r.type === res.type && r.name === res.name);
      const path = [...last, i === kids.length - 1];
      steps.push({ res, ...plan(res, old), depth, last: path });
      walk(res.name, depth + 1, path);
    });
  };
  walk("", 1, []);
  const parentOf = (r: RecordedResource) => after.resources.find((x) => x.name === r.options.parent);
  const lineage = (r: RecordedResource): RecordedResource[] => {
    const up = parentOf(r);
    return up ? [...lineage(up), up] : [];
  };
  const qualified = (r: RecordedResource) =>
    `urn:pulumi:${stack}::${PROJECT}::${[...lineage(r), r].map((x) => x.type).join("$")}::${r.name}`;
  const info = (s: Step) => (s.op === "update" || s.op === "replace" ? `[diff: ~${s.changed.join(",")}]` : "");
  const rows = [
    ["   ", "Type", "Name", "Plan", "Info"],
    ["   ", STACK, `${PROJECT}-${stack}`, "", ""],
    ...steps.map((s) => {
      const tree =
        s.last
          .slice(0, -1)
          .map((l) => (l ? "   " : "│  "))
          .join("") + (s.last.at(-1) ? "└─ " : "├─ ");
      return [` ${SYMBOL[s.op]}`, tree + s.res.type, s.res.name, s.op === "same" ? "" : s.op, info(s)];
    }),
  ];
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => [...r[c]].length)));
  const o = new Out();
  o.w(`Previewing update (${stack})\n\n`);
  const cell = (c: string, i: number) => (i < 4 ? c + " ".repeat(widths[i] - [...c].length) : c);
  for (const r of rows) o.w(r.map(cell).join("  ").trimEnd(), "\n");
  o.w("\n", `  ${STACK}: (same)\n`, `    [urn=urn:pulumi:${stack}::${PROJECT}::${STACK}::${PROJECT}-${stack}]\n`);
  // Changed resources, and the components they belong to (as the stack itself: "same").
  const changedUnder = (s: Step) => steps.some((x) => x.op !== "same" && lineage(x.res).includes(s.res));
  for (const s of steps.filter((x) => x.op !== "same" || changedUnder(x))) {
    o.w(pad(s.depth), SYMBOL[s.op], `${s.res.type}: (${s.op})\n`, pad(s.depth + 1), `[urn=${qualified(s.res)}]\n`);
    const old = before.resources.find((r) => r.type === s.res.type && r.name === s.res.name)?.rawInputs ?? {};
    const pick = (x: Record<string, unknown>) => Object.fromEntries(s.changed.map((k) => [k, view(x[k])]));
    o.object(pick(old), pick(s.res.rawInputs), s.depth + 1);
  }
  o.w("\nOutputs:\n");
  o.object(view(before.outputs) as Record<string, unknown>, view(after.outputs) as Record<string, unknown>, 1, false);
  const count = (op: Op) => steps.filter((s) => s.op === op).length;
  o.w("\nResources:\n");
  for (const op of ["create", "update", "replace"] as const)
    if (count(op)) o.w(`    ${SYMBOL[op].trim().padEnd(2)}${count(op)} to ${op}\n`);
  o.w(`    ${steps.length - count("same")} changes. ${count("same") + 1} unchanged\n`);
  return o.text;
}

/**
 * Runs the program for the deployed config, then previews `afterConfig` against it the way
 * the engine would: a RandomPassword whose inputs changed is replaced, so its `result`
 * (and everything computed from it, down to the secret version id) is unknown.
 */
export async function previewChange(
  stack: string,
  beforeConfig: Record<string, unknown>,
  afterConfig: Record<string, unknown>,
): Promise<{ text: string; before: RunResult; after: RunResult }> {
  const before = await runProgram({ stack, config: beforeConfig });
  const computedOutputs: RunOptions["computedOutputs"] = (type, name, inputs) => {
    if (type === TYPES.password && !same(inputs, before.resources.find((r) => r.name === name)?.inputs)) return {};
    if (type === TYPES.version && !same(inputs, before.resources.find((r) => r.name === name)?.inputs)) return {};
    return undefined;
  };
  const after = await runProgram({ stack, config: afterConfig, preview: true, computedOutputs });
  return { text: renderPreview(before, after), before, after };
}
