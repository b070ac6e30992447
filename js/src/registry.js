// The model registry widget: versions with stage and alias badges, their run's metrics,
// controls to change stage, set or remove aliases and edit descriptions (each confirmed
// first), and the audit history. Every action is carried out by the kernel's Client.
import { node } from "./dom.js";
import { formatNumber, formatTime } from "./format.js";

const STAGES = ["None", "Staging", "Production", "Archived"];
const HISTORY_COLUMNS = ["when", "who", "action", "version", "change", "comment"];

/** A sentence describing a request, shown in the confirmation step. */
export function describeRequest(name, request) {
  switch (request.action) {
    case "transition":
      return `Move version ${request.version} of ${name} to ${request.stage}` +
        (request.require ? ` if ${request.require}` : "") +
        (request.archive && ["Staging", "Production"].includes(request.stage)
          ? `, archiving the versions now in ${request.stage}` : "") + "?";
    case "set_alias":
      return `Point @${request.alias} at version ${request.version} of ${name}?`;
    case "delete_alias":
      return `Remove @${request.alias} from ${name}?`;
    case "describe":
      return `Save the description of version ${request.version}?`;
    default:
      return `${request.action}?`;
  }
}

function render({ model, el }) {
  el.classList.add("nbtrack-registry");
  const top = node("div", { className: "nbt-reg-top" });
  const confirmBox = node("div", { className: "nbt-confirm", hidden: true });
  const message = node("div", { className: "nbt-message" });
  const table = node("div", { className: "nbt-versions" });
  const history = node("details", { className: "nbt-history", open: true });
  el.append(top, message, confirmBox, table, history);

  function ask(request) {
    confirmBox.hidden = false;
    confirmBox.replaceChildren(
      node("span", { textContent: describeRequest(model.get("selected_model"), request) }),
      node("button", { className: "nbt-confirm-yes", textContent: "Confirm",
        onclick: () => {
          confirmBox.hidden = true;
          model.send(request);
        } }),
      node("button", { className: "nbt-confirm-no", textContent: "Cancel",
        onclick: () => { confirmBox.hidden = true; } }),
    );
  }

  function drawTop() {
    const select = node("select", { className: "nbt-model-select",
      onchange: () => { model.set("selected_model", select.value); model.save_changes(); } },
      ...model.get("models").map((m) => new Option(m.name, m.name)));
    select.value = model.get("selected_model");
    const require = node("input", { className: "nbt-require", value: model.get("require"),
      placeholder: "guard, e.g. metrics.rmse <= current",
      onchange: () => { model.set("require", require.value); model.save_changes(); } });
    const refresh = node("button", { textContent: "↻", title: "Read the registry again",
      onclick: () => model.send({ action: "refresh" }) });
    top.replaceChildren(node("b", { textContent: "Model " }), select,
      node("span", { textContent: " promotion guard " }), require, refresh);
  }

  function versionRow(v) {
    const row = node("tr", { className: "nbt-version" });
    row.dataset.version = v.version;
    const badges = node("td", {},
      node("span", { className: `nbt-stage nbt-stage-${v.stage}`, textContent: v.stage }),
      ...v.aliases.map((alias) => node("span", { className: "nbt-alias", textContent: `@${alias}` },
        node("button", { className: "nbt-alias-remove", textContent: "×", title: `remove @${alias}`,
          onclick: () => ask({ action: "delete_alias", alias }) }))));
    const metrics = Object.entries(v.metrics).map(([k, x]) => `${k} ${formatNumber(x)}`).join(", ");
    const stage = node("select", { className: "nbt-stage-select" },
      ...STAGES.map((s) => new Option(s, s)));
    stage.value = v.stage === "Production" ? "Archived" : "Production";
    const move = node("button", { className: "nbt-move", textContent: "Move",
      onclick: () => ask({ action: "transition", version: v.version, stage: stage.value,
        archive: true, require: model.get("require") }) });
    const promote = node("button", { className: "nbt-promote", textContent: "Promote",
      title: "Move to Production (with the guard, if any)",
      disabled: v.stage === "Production",
      onclick: () => ask({ action: "transition", version: v.version, stage: "Production",
        archive: true, require: model.get("require") }) });
    const alias = node("input", { className: "nbt-alias-input", placeholder: "alias", size: 9 });
    const setAlias = node("button", { className: "nbt-set-alias", textContent: "Set",
      onclick: () => alias.value.trim() &&
        ask({ action: "set_alias", version: v.version, alias: alias.value.trim() }) });
    const description = node("input", { className: "nbt-description", value: v.description,
      placeholder: "description" });
    const save = node("button", { className: "nbt-save-description", textContent: "Save",
      onclick: () => ask({ action: "describe", version: v.version,
        description: description.value }) });
    row.append(node("td", { textContent: `v${v.version}` }), badges,
      node("td", { textContent: v.run_name ?? "—", title: v.run_id ?? "" }),
      node("td", { textContent: metrics }),
      node("td", {}, description, save),
      node("td", {}, promote, stage, move),
      node("td", {}, alias, setAlias));
    return row;
  }

  function drawVersions() {
    const versions = model.get("versions");
    if (versions.length === 0) {
      table.replaceChildren(node("div", { className: "nbt-empty",
        textContent: "No versions yet: register one with nbtrack.register_model(model_uri, name)." }));
      return;
    }
    const head = node("tr", {}, ...["version", "stage · aliases", "run", "metrics", "description",
      "stage", "alias"].map((t) => node("th", { textContent: t })));
    table.replaceChildren(node("table", {}, node("thead", {}, head),
      node("tbody", {}, ...versions.map(versionRow))));
  }

  function drawHistory() {
    const rows = model.get("history").map((e) => node("tr", {},
      node("td", { textContent: formatTime(e.timestamp) }),
      node("td", { textContent: e.user_id ?? "" }),
      node("td", { textContent: e.action }),
      node("td", { textContent: e.version == null ? "" : `v${e.version}` }),
      node("td", { textContent: e.field ? `${e.field}: ${e.from_value ?? "—"} → ${e.to_value ?? "—"}` : "" }),
      node("td", { textContent: e.comment ?? "" })));
    const head = node("tr", {}, ...HISTORY_COLUMNS.map((t) => node("th", { textContent: t })));
    history.replaceChildren(node("summary", { textContent: `History (${rows.length})` }),
      node("table", {}, node("thead", {}, head), node("tbody", {}, ...rows)));
  }

  function drawMessage() {
    message.textContent = model.get("message");
    message.className = `nbt-message nbt-${model.get("message_kind") || "none"}`;
    message.hidden = !model.get("message");
  }

  const handlers = { "change:models": drawTop, "change:selected_model": drawTop,
    "change:require": drawTop, "change:versions": drawVersions, "change:history": drawHistory,
    "change:message": drawMessage, "change:message_kind": drawMessage };
  for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
  drawTop();
  drawVersions();
  drawHistory();
  drawMessage();
  return () => {
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
  };
}

export default { render };
