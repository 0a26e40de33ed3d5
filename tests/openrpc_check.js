// Checks a served OpenRPC document with the OpenRPC project's own tools
// (@open-rpc/schema-utils-js): validateOpenRPCDocument against the
// meta-schema, parseOpenRPCDocument (which dereferences every $ref), and
// MethodCallValidator on a few calls. Prints a JSON report.
//
//   NODE_PATH=/opt/tasktypes-openrpc/node_modules node tests/openrpc_check.js URL
const http = require("http");
const utils = require("@open-rpc/schema-utils-js");

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { body += chunk; });
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

async function main() {
  const document = JSON.parse(await get(process.argv[2]));
  const valid = utils.validateOpenRPCDocument(document);
  if (valid !== true) {
    console.error(JSON.stringify(valid, null, 1));
    process.exit(1);
  }
  const parsed = await utils.parseOpenRPCDocument(JSON.stringify(document));
  const validator = new utils.MethodCallValidator(parsed);
  const calls = {};
  for (const [method, params] of [["countdown", [3, 0.5]], ["countdown", ["3", 0.5]],
                                  ["countdown_wait", [1, -1]], ["echo", [null]]]) {
    const errors = validator.validate(method, params);
    calls[method + " " + JSON.stringify(params)] = errors.length === 0;
  }
  process.stdout.write(JSON.stringify({valid: true, methods: parsed.methods.length, calls}));
}

main().catch((e) => { console.error(e); process.exit(1); });
