// Decode the Arrow IPC bytes the kernel sends into plain column arrays.
import { tableFromIPC } from "@uwdata/flechette";

/** Bytes from a widget trait (DataView, ArrayBuffer or Uint8Array) as a Uint8Array. */
export function asBytes(data) {
  if (!data) return new Uint8Array(0);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** `{names, numRows, columns: {name: values[]}}`; an empty payload is an empty table. */
export function decodeTable(data) {
  const bytes = asBytes(data);
  if (bytes.byteLength === 0) return { names: [], numRows: 0, columns: {} };
  const table = tableFromIPC(bytes, { useBigInt: false, useDate: false });
  const names = table.names;
  const columns = {};
  for (const name of names) columns[name] = table.getChild(name).toArray();
  return { names, numRows: table.numRows, columns };
}
