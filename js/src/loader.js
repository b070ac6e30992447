// The `_esm` of the large dashboards: a small module (1.5 KB) that fetches the front end (the
// bundle named by the `_nbtrack_frontend` trait, e.g. "compare.js@3f2a…") from the kernel over
// the widget's own message channel, once per page, instead of storing it in every widget's
// saved state. While the cell that made the widget runs, the bundle also comes in the widget's
// state (`_nbtrack_bundle`, emptied when the cell ends), so a first dashboard need not wait
// for the kernel to be idle. It works wherever widgets talk to a kernel (JupyterLab, Notebook 7, VS Code,
// Voilà) and imports the bundle the way anywidget imports `_esm`: from a blob URL.

const KIND = "nbtrack-frontend";
const SLOW_MS = 8000; // then say why nothing shows yet
const RETRY_MS = 3000; // another widget asked this long ago without an answer: ask too
const cache = (globalThis[Symbol.for("nbtrack.frontends")] ??= new Map());

/** The page's entry for one bundle id: a promise of its module, shared by every widget. */
function entry(id) {
  let found = cache.get(id);
  if (!found) {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    found = { promise, resolve, reject, received: false };
    cache.set(id, found);
  }
  return found;
}

async function importBytes(bytes) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "text/javascript" }));
  try {
    return await import(/* webpackIgnore: true */ /* @vite-ignore */ url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

/**
 * The bundle's module: from the page's cache, or asked of the kernel through `model`.
 * `load` turns the bytes into a module (tests pass their own).
 */
export function frontEnd(model, load = importBytes) {
  const id = model.get("_nbtrack_frontend");
  const shared = entry(id);
  if (shared.received) return shared.promise;
  const accept = (bytes) => {
    shared.received = true;
    load(bytes).then(shared.resolve, (error) => {
      cache.delete(id); // a later widget may ask again
      shared.reject(error);
    });
  };
  // While the cell that made the widget runs, the bundle comes with the widget's state
  const pushed = model.get("_nbtrack_bundle");
  if (pushed?.byteLength) {
    accept(pushed);
    return shared.promise;
  }
  const onMessage = (message, buffers) => {
    if (message?.kind === KIND && message.id === id && !shared.received) accept(buffers[0]);
  };
  model.on("msg:custom", onMessage);
  // One widget asks; the others wait for its answer. Should none come (that widget's kernel is
  // gone, as in a reopened notebook), each waiting widget asks through its own channel.
  const ask = () => {
    if (shared.received) return;
    shared.askedAt = Date.now();
    model.send({ kind: KIND, id });
  };
  const wait = (shared.askedAt ?? -Infinity) + RETRY_MS - Date.now();
  const timer = wait > 0 ? setTimeout(ask, wait) : (ask(), undefined);
  shared.promise.finally(() => {
    clearTimeout(timer);
    model.off("msg:custom", onMessage);
  }).catch(() => {});
  return shared.promise;
}

function initialize({ model }) {
  frontEnd(model).catch(() => {}); // ask at once; render shows any error
}

async function render({ model, el }) {
  const note = document.createElement("div");
  note.className = "nbtrack-loading";
  note.textContent = "Loading the nbtrack dashboard from the kernel…";
  el.append(note);
  const slow = setTimeout(() => {
    note.textContent += " The kernel is busy, or this output is no longer connected to it: " +
      "it shows once the kernel is idle, or when the cell is run again.";
  }, SLOW_MS);
  let module;
  try {
    module = await frontEnd(model);
  } catch (error) {
    note.textContent = `The nbtrack dashboard could not be loaded: ${error}`;
    return undefined;
  } finally {
    clearTimeout(slow);
  }
  note.remove();
  // the bundles define only render; an initialize would run once per view here
  return module.default.render({ model, el });
}

export default { initialize, render };
