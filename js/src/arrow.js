// Decode the Arrow IPC bytes the kernel sends into columns, lazily: a column is turned into a
// plain array the first time it is asked for. Decoding every text column of 10k runs (run ids,
// names, params, tags) took the page ~150 ms before the first rows could show; the table only
// needs the cells in view, which `valueAt` reads without decoding the rest.
import { tableFromIPC } from "@uwdata/flechette";

/** Bytes from a widget trait (DataView, ArrayBuffer or Uint8Array) as a Uint8Array. */
export function asBytes(data) {
  if (!data) return new Uint8Array(0);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/**
 * `{names, numRows, columns: {name: values[]}, valueAt(name, row)}`; an empty payload is an
 * empty table. `columns[name]` decodes that column on first use; `valueAt` reads one cell.
 */
export function decodeTable(data) {
  const bytes = asBytes(data);
  if (bytes.byteLength === 0) {
    return { names: [], numRows: 0, columns: {}, valueAt: () => undefined };
  }
  const table = tableFromIPC(bytes, { useBigInt: false, useDate: false });
  const names = table.names;
  const columns = {};
  for (const name of names) {
    Object.defineProperty(columns, name, {
      enumerable: true,
      configurable: true,
      get() {
        const values = table.getChild(name).toArray();
        Object.defineProperty(columns, name, { value: values, enumerable: true });
        return values;
      },
    });
  }
  const valueAt = (name, row) => {
    const own = Object.getOwnPropertyDescriptor(columns, name);
    if (!own) return undefined;
    if ("value" in own) return own.value[row]; // decoded already
    return table.getChild(name).at(row);
  };
  return { names, numRows: table.numRows, columns, valueAt };
}
