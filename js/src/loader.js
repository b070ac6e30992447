// The `_esm` of the large dashboards: a small module that fetches the front end (the bundle
// named by the `_nbtrack_frontend` trait, e.g. "compare.js@3f2a…") from the kernel over the
// widget's own message channel, once per page, instead of storing it in every widget's saved
// state. While the cell that made the widget runs, that bundle also comes in the widget's state
// (`_nbtrack_bundle`, emptied when the cell ends), so a first dashboard need not wait for the
// kernel to be idle. Bundles needed later (`_nbtrack_extras`, e.g. the charts' plotly) are
// fetched the same way when the front end first asks for them. It works wherever widgets talk
// to a kernel (JupyterLab, Notebook 7, VS Code, Voilà) and imports a bundle the way anywidget
// imports `_esm`: from a blob URL.

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
 * The module of bundle `id`: from the page's cache, from `pushed` bytes (the widget's state),
 * or asked of the kernel through `model`. `load` turns the bytes into a module.
 */
function fetchBundle(model, id, pushed, load) {
  const shared = entry(id);
  if (shared.received) return shared.promise;
  const forget = (error) => {
    cache.delete(id); // a later widget may ask again
    shared.reject(error);
  };
  const accept = (bytes) => {
    shared.received = true;
    load(bytes).then(shared.resolve, forget);
  };
  if (pushed?.byteLength) {
    accept(pushed);
    return shared.promise;
  }
  const onMessage = (message, buffers) => {
    if (message?.kind !== KIND || message.id !== id || shared.received) return;
    if (message.error) forget(new Error(message.error));
    else accept(buffers[0]);
  };
  model.on("msg:custom", onMessage);
  // One widget asks; the others wait for its answer. Should none come (that widget's kernel is
  // gone, as in a reopened notebook), each waiting widget asks through its own channel.
  const ask = () => {
    if (shared.received) return;
    shared.askedAt = Date.now();
    try {
      model.send({ kind: KIND, id });
    } catch (error) {
      forget(new Error(`this output is no longer connected to its kernel (${error?.message})`));
    }
  };
  const wait = (shared.askedAt ?? -Infinity) + RETRY_MS - Date.now();
  const timer = wait > 0 ? setTimeout(ask, wait) : (ask(), undefined);
  shared.promise.finally(() => {
    clearTimeout(timer);
    model.off("msg:custom", onMessage);
  }).catch(() => {});
  return shared.promise;
}

/** The widget's front end: the module of its `_nbtrack_frontend` bundle. */
export function frontEnd(model, load = importBytes) {
  return fetchBundle(model, model.get("_nbtrack_frontend"), model.get("_nbtrack_bundle"), load);
}

/** The module of the widget's extra bundle `name` (e.g. "charts.js"), fetched on first use. */
export function extraBundle(model, name, load = importBytes) {
  const id = model.get("_nbtrack_extras")?.[name];
  if (!id) return Promise.reject(new Error(`this widget has no bundle ${name}`));
  return fetchBundle(model, id, undefined, load);
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
  return module.default.render({ model, el, loadBundle: (name) => extraBundle(model, name) });
}

export default { initialize, render };
