/* tasktypes.js as an ES module:
 *
 *   import tasktypes, { run, attach, call } from "/static/tasktypes.mjs";
 *
 * The helper itself is tasktypes.js (a plain script that sets
 * globalThis.tasktypes); this file only re-exports it, with the JSON-RPC
 * endpoint found next to this module.
 */
import "./tasktypes.js";

const tasktypes = globalThis.tasktypes;
if (!tasktypes.defaults.url) {
  tasktypes.defaults.url = new URL("../jsonrpc", import.meta.url).href;
}
export const { run, attach, call, TaskTypesError } = tasktypes;
export default tasktypes;
