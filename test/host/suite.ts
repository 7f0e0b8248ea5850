/**
 * node:test's `describe`/`it` and hooks for host test files, with skips that are counted.
 *
 *   const skip = unavailable(hostTestsUnavailableReason()) ?? unavailable(awsCliMissing());
 *   const { after, before, describe, it } = hostSuite(skip);
 *
 * A whole `describe` skipped with `{ skip }` is reported by node's runner as one line and counted
 * nowhere ("skipped 0"), so a machine without a prerequisite looked like a clean run. Here, when
 * `skip` holds a reason, every suite still runs its body to declare its tests, each test is
 * declared skipped with that reason (the runner's summary counts and names it), and no hook runs
 * (no host boots). Under CI `unavailable()` throws instead, so a missing prerequisite fails the run.
 */
import * as nodeTest from "node:test";

type Body = (...args: never[]) => unknown;
type Options = Record<string, unknown>;

/** Splits node:test's `(name, [options], [fn])` arguments. */
function split(a?: Options | Body, b?: Body): { opts: Options; fn?: Body } {
  if (typeof a === "function") return { opts: {}, fn: a };
  return { opts: a ?? {}, fn: b };
}

export interface HostSuite {
  describe: (name: string, a?: Options | Body, b?: Body) => void;
  it: (name: string, a?: Options | Body, b?: Body) => void;
  before: typeof nodeTest.before;
  after: typeof nodeTest.after;
  beforeEach: typeof nodeTest.beforeEach;
  afterEach: typeof nodeTest.afterEach;
}

export function hostSuite(skip: string | undefined): HostSuite {
  if (skip === undefined) {
    return {
      describe: (name, a, b) => {
        const { opts, fn } = split(a, b);
        void nodeTest.describe(name, opts, fn as () => void);
      },
      it: (name, a, b) => {
        const { opts, fn } = split(a, b);
        void nodeTest.it(name, opts, fn as () => Promise<void>);
      },
      before: nodeTest.before,
      after: nodeTest.after,
      beforeEach: nodeTest.beforeEach,
      afterEach: nodeTest.afterEach,
    };
  }
  const noHook = (() => undefined) as unknown as typeof nodeTest.before;
  return {
    describe: (name, a, b) => {
      const { opts, fn } = split(a, b);
      // The suite's own skip (the same reason) is what this wrapper reports per test instead.
      const rest = { ...opts, skip: false };
      void nodeTest.describe(name, rest, fn as () => void);
    },
    it: (name) => {
      void nodeTest.it(name, { skip });
    },
    before: noHook,
    after: noHook as typeof nodeTest.after,
    beforeEach: noHook as typeof nodeTest.beforeEach,
    afterEach: noHook as typeof nodeTest.afterEach,
  };
}
