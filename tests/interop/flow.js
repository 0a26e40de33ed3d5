// The whole task flow with node-soap (npm "soap"), from the WSDL only.
// Usage: node flow.js http://127.0.0.1:8000   Prints one JSON object of what
// the client saw; tests/test_interop.py checks it.
const soap = require("soap");

async function main(base) {
  const client = await soap.createClientAsync(base + "/soap?wsdl");
  const seen = {};
  // node-soap resolves to [result, rawResponse, ...]; result is the response
  // wrapper, whose one member is "<op>Result".
  const call = async (op, args) => (await client[op + "Async"](args))[0][op + "Result"];
  const fault = async (op, args) => {
    try {
      await call(op, args);
      return null;
    } catch (err) {
      const f = err.root.Envelope.Body.Fault;
      return { faultcode: f.faultcode, faultstring: f.faultstring };
    }
  };

  seen.echo = await call("echo", { text: "hi" });

  const short = (await call("countdown", { steps: 3, delay: 0.05 })).task_id;
  seen.short_id_type = typeof short;
  seen.short_wait = await call("countdown_wait", { task_id: short, timeout: 20 });
  seen.short_progress = await call("countdown_progress", { task_id: short });
  seen.short_result = await call("countdown_result", { task_id: short });

  const long = (await call("countdown", { steps: 100, delay: 0.1 })).task_id;
  seen.long_progress = await call("countdown_progress", { task_id: long });
  seen.not_finished = await fault("countdown_result", { task_id: long });
  seen.cancel = await call("countdown_cancel", { task_id: long });
  seen.cancelled = await fault("countdown_result", { task_id: long });

  const clone = (await call("cloneInstance",
                            { instance_id: "vm-7", new_instance_name: "copy" })).task_id;
  seen.clone_wait = await call("cloneInstance_wait", { task_id: clone, timeout: 20 });
  seen.clone_result = await call("cloneInstance_result", { task_id: clone });

  const failing = (await call("failingTask", { message: "disk full", delay: 0 })).task_id;
  seen.failing_wait = await call("failingTask_wait", { task_id: failing, timeout: 20 });
  seen.failed = await fault("failingTask_result", { task_id: failing });

  seen.not_found = await fault("countdown_progress", { task_id: 12345 });
  seen.bad_argument = await fault("countdown", { steps: 20000, delay: 0.1 });

  console.log(JSON.stringify(seen));
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(1);
});
