// The diff of selected runs: tables of what differs, and the code as a real line diff.

function table(section, runs, onlyDifferences) {
  const rows = section.rows.filter((r) => r.differs || !onlyDifferences);
  if (rows.length === 0) return null;
  const t = document.createElement("table");
  t.className = "nbt-diff-table";
  const head = t.createTHead().insertRow();
  for (const text of [section.title, ...runs.map((r) => r.run_name)]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.append(th);
  }
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.classList.toggle("nbt-differs", row.differs);
    tr.insertCell().textContent = row.key;
    for (const value of row.values) {
      const td = tr.insertCell();
      td.textContent = value ?? "—";
    }
  }
  return t;
}

function codeBlock(code) {
  const block = document.createElement("div");
  block.className = "nbt-code-diff";
  const title = document.createElement("div");
  title.className = "nbt-code-title";
  title.textContent = `code: ${code.base} → ${code.other}` +
    (code.same ? " (identical)" : code.lines.length ? "" : " (no code recorded)");
  block.append(title);
  if (code.lines.length === 0) return block; // no empty box under "identical" or "no code"
  const pre = document.createElement("pre");
  for (const line of code.lines) {
    const span = document.createElement("span");
    span.className = { "+": "nbt-add", "-": "nbt-del", "@": "nbt-hunk" }[line.op] ?? "";
    span.textContent = (line.op === "@" ? "" : line.op) + line.text + "\n";
    pre.append(span);
  }
  block.append(pre);
  return block;
}

/** Build the diff panel in `el`; returns `{update(diff)}`. */
export function createDiff(el) {
  const toggle = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = true;
  toggle.append(box, " only differences");
  const content = document.createElement("div");
  el.append(toggle, content);
  let last = {};

  function draw() {
    content.replaceChildren();
    if (!last.runs) {
      content.textContent = "Select two or more runs in the table to compare them.";
      return;
    }
    for (const section of last.sections) {
      const t = table(section, last.runs, box.checked);
      if (t) content.append(t);
    }
    for (const code of last.code) content.append(codeBlock(code));
  }
  box.onchange = draw;
  return {
    update(diff) {
      last = diff;
      draw();
    },
  };
}
