// Tell the user when the kernel stops answering: the last data stays, with a clear note.

const PATIENCE_MS = 8000;

/**
 * Watch `model` for its kernel. Returns `{expect(), answered(), stop()}`: call `expect` after
 * asking the kernel for something and `answered` when news arrives; a question left without an
 * answer (or a closed connection) shows a note above the last data, which stays visible.
 */
export function watchKernel(model, el) {
  const note = document.createElement("div");
  note.className = "nbt-kernel-note";
  note.hidden = true;
  el.prepend(note);
  let timer = null;
  const say = (text) => {
    note.textContent = text;
    note.hidden = false;
  };
  const onLive = () => {
    if (model.comm_live === false) say("Disconnected from the kernel: showing the last data. Re-run the cell to reconnect.");
  };
  model.on?.("comm_live_update", onLive);
  return {
    expect() {
      clearTimeout(timer);
      timer = setTimeout(() => say("No answer from the kernel (busy or disconnected): " +
        "showing the last data."), PATIENCE_MS);
    },
    answered() {
      clearTimeout(timer);
      note.hidden = true;
    },
    stop() {
      clearTimeout(timer);
      model.off?.("comm_live_update", onLive);
    },
  };
}
