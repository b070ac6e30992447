// The widget side of a VS Code notebook, outside VS Code: the widget manager that VS Code's
// Jupyter extension runs in its notebook webview (@vscode/jupyter-ipywidgets8, loaded from
// ipywidgets.js as an ES module), on a real kernel connection (@jupyterlab/services over the
// Jupyter server's websocket), with third-party widget modules loaded by requirejs from the
// kernel environment's nbextensions, and outputs rendered as VS Code's widget renderer does:
// wait until the output's model exists, create its view on the output's element, display it.
//
// The test bundles this file with esbuild (the page has no bundler) and calls
// `window.vscodeHost.start(...)`, then `window.vscodeHost.run(code)` for each cell.
import { KernelManager, ServerConnection } from "@jupyterlab/services";

const WIDGET_VIEW = "application/vnd.jupyter.widget-view+json";

const log = [];
const problems = []; // what the page or the widget manager reported as failing
let kernel;
let manager;
let cellCount = 0;
let currentCell;
const frontEnd = { asked: 0, answers: 0, bytes: 0 }; // nbtrack's bundle over a widget's comm

function note(message) {
  log.push(`${new Date().toISOString().slice(11, 23)} ${message}`);
}

window.addEventListener("error", (event) => problems.push(`page error: ${event.message}`));
window.addEventListener("unhandledrejection", (event) =>
  problems.push(`unhandled rejection: ${event.reason?.stack ?? event.reason}`));

/**
 * VS Code's script loader contract: `loadWidgetScript(module)` makes `module` loadable by
 * requirejs. VS Code's extension host finds each module's script in the kernel environment's
 * share/jupyter/nbextensions (the mapping each extension.js gives requirejs); the test found the
 * same and passes it here as `sources` (module name -> URL of its script).
 */
function scriptLoader(sources) {
  const registered = new Set();
  return {
    widgetsRegisteredInRequireJs: registered,
    async loadWidgetScript(moduleName, moduleVersion) {
      const url = sources[moduleName];
      note(`script for ${moduleName}@${moduleVersion}: ${url ?? "none"}`);
      if (!url) return;
      window.requirejs.config({ paths: { [moduleName]: url.replace(/\.js$/, "") } });
      registered.add(moduleName);
    },
    successHandler(className, moduleName, moduleVersion) {
      note(`loaded ${moduleName}@${moduleVersion} ${className}`);
    },
    errorHandler(className, moduleName, moduleVersion, error) {
      problems.push(`could not load ${moduleName}@${moduleVersion} ${className}: ${error}`);
    },
  };
}

/** `promise`, or an error saying what did not happen within `ms` (page.evaluate never times out). */
function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s; log:\n${log.join("\n")}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function connected(connection) {
  if (connection.connectionStatus === "connected") return Promise.resolve();
  return new Promise((resolve) => {
    const check = (_, status) => {
      if (status !== "connected") return;
      connection.connectionStatusChanged.disconnect(check);
      resolve();
    };
    connection.connectionStatusChanged.connect(check);
  });
}

/** Render one widget output into a new output element of the current cell. */
async function renderOutput(data) {
  const output = document.createElement("div");
  output.className = "cell-output-ipywidget-background";
  output.dataset.modelId = data.model_id;
  currentCell.append(output);
  const model = await manager.get_model(data.model_id); // once its comm_open is handled
  const view = await manager.create_view(model, { el: output });
  await manager.display_view(data, view, { node: output });
  output.dataset.rendered = "true";
}

/** Count nbtrack's requests for its front end and the kernel's answers (binary buffers). */
function onAnyMessage(_, { msg, direction }) {
  const data = msg.content?.data; // a widget's custom message: {method: "custom", content}
  if (msg.header.msg_type !== "comm_msg" || data?.method !== "custom" ||
      data.content?.kind !== "nbtrack-frontend") return;
  if (direction === "send") {
    frontEnd.asked += 1;
  } else {
    frontEnd.answers += 1;
    frontEnd.bytes += (msg.buffers ?? []).reduce((sum, b) => sum + b.byteLength, 0);
  }
}

function onIOPub(_, message) {
  const type = message.header.msg_type;
  const data = message.content?.data?.[WIDGET_VIEW];
  if (!data || (type !== "display_data" && type !== "execute_result")) return;
  note(`${type} of widget ${data.model_id}`);
  renderOutput(data).catch((error) => problems.push(`render ${data.model_id}: ${error.stack ?? error}`));
}

async function start({ baseUrl, token, kernelId, kernelName, sources }) {
  const serverSettings = ServerConnection.makeSettings({
    baseUrl, wsUrl: `ws${baseUrl.slice(4)}`, token, appendToken: true,
  });
  kernel = new KernelManager({ serverSettings }).connectTo({ model: { id: kernelId, name: kernelName } });
  await within(60_000, connected(kernel).then(() => kernel.info), "no kernel connection");
  note(`connected to kernel ${kernelId}`);

  const { activate } = await import(new URL("ipywidgets.js", location.href).href);
  activate();
  window.vscIPyWidgets8.load();
  const { WidgetManager } = window.vscIPyWidgets;
  manager = new WidgetManager(kernel, document.getElementById("outputs"), scriptLoader(sources),
    note, undefined);
  kernel.iopubMessage.connect(onIOPub);
  kernel.anyMessage.connect(onAnyMessage);
  return true;
}

/** Run `code` as the next cell; its widget outputs render under `#cell-<n>`. */
async function run(code) {
  cellCount += 1;
  currentCell = document.createElement("div");
  currentCell.id = `cell-${cellCount}`;
  currentCell.className = "cell";
  document.getElementById("outputs").append(currentCell);
  const errors = [];
  const future = kernel.requestExecute({ code, stop_on_error: true });
  future.onIOPub = (message) => {
    if (message.header.msg_type === "error") errors.push(message.content.traceback.join("\n"));
  };
  const reply = await within(120_000, future.done, "the cell did not finish");
  return { cell: currentCell.id, status: reply.content.status, errors };
}

window.vscodeHost = { start, run, log, problems, frontEnd };
