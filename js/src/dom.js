// A small helper for building DOM: an element with properties and children, in one call.

/** `node("button", { className: "x", onclick }, "text")` */
export function node(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  Object.assign(el, props);
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}
