import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { extraBundle, frontEnd } from "../src/loader.js";

const KEY = Symbol.for("nbtrack.frontends");

/** A widget model whose kernel answers (or not) the loader's request with the bundle's bytes. */
function fakeModel(id, { answers = true, pushed = undefined, extras = {}, error = "" } = {}) {
  const handlers = new Set();
  const state = { _nbtrack_frontend: id, _nbtrack_bundle: pushed, _nbtrack_extras: extras };
  const model = {
    sent: [],
    get: (name) => state[name],
    on: (event, handler) => event === "msg:custom" && handlers.add(handler),
    off: (event, handler) => handlers.delete(handler),
    send(message) {
      model.sent.push(message);
      if (error) {
        queueMicrotask(() => handlers.forEach((h) => h({ kind: message.kind, id: message.id,
          error }, [])));
      } else if (answers) {
        const bytes = new TextEncoder().encode(`bundle ${message.id}`);
        queueMicrotask(() => handlers.forEach((h) => h({ kind: message.kind, id: message.id },
          [new DataView(bytes.buffer)])));
      }
    },
    listeners: () => handlers.size,
  };
  return model;
}

const load = async (view) => ({ default: { text: new TextDecoder().decode(view) } });

describe("loader", () => {
  beforeEach(() => {
    globalThis[KEY].clear();
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("asks the kernel once per page and bundle id, whatever the number of widgets", async () => {
    const first = fakeModel("compare.js@aaa");
    const second = fakeModel("compare.js@aaa");
    const [a, b] = await Promise.all([frontEnd(first, load), frontEnd(second, load)]);
    expect(a).toBe(b);
    expect(a.default.text).toBe("bundle compare.js@aaa");
    expect(first.sent).toEqual([{ kind: "nbtrack-frontend", id: "compare.js@aaa" }]);
    expect(second.sent).toEqual([]); // it waited for the first one's answer
    const later = fakeModel("compare.js@aaa");
    expect(await frontEnd(later, load)).toBe(a); // from the page's cache
    expect(later.sent).toEqual([]);
    expect(first.listeners() + second.listeners()).toBe(0); // nothing left listening
  });

  it("a new bundle id (another nbtrack in another kernel) is asked for again", async () => {
    const old = await frontEnd(fakeModel("compare.js@aaa"), load);
    const other = fakeModel("compare.js@bbb");
    const fresh = await frontEnd(other, load);
    expect(fresh).not.toBe(old);
    expect(other.sent).toHaveLength(1);
  });

  it("a widget whose kernel never answers does not hold up the others", async () => {
    const dead = fakeModel("compare.js@ccc", { answers: false });
    const waiting = frontEnd(dead, load);
    const live = fakeModel("compare.js@ccc");
    const answered = frontEnd(live, load);
    expect(live.sent).toEqual([]); // the dead one asked a moment ago: wait for its answer
    await vi.advanceTimersByTimeAsync(3000);
    expect(live.sent).toHaveLength(1); // none came: it asks through its own channel
    const module = await answered;
    expect(await waiting).toBe(module); // and the dead one gets it too
    expect(dead.sent).toHaveLength(1);
  });

  it("a bundle that fails to import can be asked for again", async () => {
    const broken = async () => {
      throw new Error("syntax error");
    };
    await expect(frontEnd(fakeModel("compare.js@ddd"), broken)).rejects.toThrow("syntax error");
    const retry = fakeModel("compare.js@ddd");
    expect((await frontEnd(retry, load)).default.text).toBe("bundle compare.js@ddd");
    expect(retry.sent).toHaveLength(1);
  });

  it("takes the bundle from the widget's state while its cell runs, asking nothing", async () => {
    const bytes = new TextEncoder().encode("bundle in the state");
    const model = fakeModel("compare.js@eee", { pushed: new DataView(bytes.buffer) });
    expect((await frontEnd(model, load)).default.text).toBe("bundle in the state");
    expect(model.sent).toEqual([]);
    const emptied = fakeModel("compare.js@fff", { pushed: new DataView(new ArrayBuffer(0)) });
    expect((await frontEnd(emptied, load)).default.text).toBe("bundle compare.js@fff");
    expect(emptied.sent).toHaveLength(1); // the cell had ended: asked of the kernel
  });

  it("fetches an extra bundle only when asked, by its own id, once per page", async () => {
    const extras = { "charts.js": "charts.js@ggg" };
    const bytes = new TextEncoder().encode("the core");
    const model = fakeModel("compare.js@ggg", { pushed: new DataView(bytes.buffer), extras });
    expect((await frontEnd(model, load)).default.text).toBe("the core");
    expect(model.sent).toEqual([]); // the core came with the state; the charts are not asked
    const [a, b] = await Promise.all([extraBundle(model, "charts.js", load),
      extraBundle(fakeModel("compare.js@ggg", { extras }), "charts.js", load)]);
    expect(a).toBe(b);
    expect(a.default.text).toBe("bundle charts.js@ggg");
    expect(model.sent).toEqual([{ kind: "nbtrack-frontend", id: "charts.js@ggg" }]);
    const later = fakeModel("compare.js@ggg", { extras });
    expect(await extraBundle(later, "charts.js", load)).toBe(a);
    expect(later.sent).toEqual([]);
  });

  it("an extra bundle the kernel cannot give is an error, and can be asked for again", async () => {
    const extras = { "charts.js": "charts.js@hhh" };
    const refused = fakeModel("compare.js@hhh", { extras, error: "no bundle 'charts.js'" });
    await expect(extraBundle(refused, "charts.js", load)).rejects.toThrow("no bundle 'charts.js'");
    const retry = fakeModel("compare.js@hhh", { extras });
    expect((await extraBundle(retry, "charts.js", load)).default.text).toBe("bundle charts.js@hhh");
    await expect(extraBundle(retry, "plots.js", load)).rejects.toThrow("no bundle plots.js");
  });
});
