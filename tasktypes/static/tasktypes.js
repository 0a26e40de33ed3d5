/* tasktypes.js: start and follow task-type methods from a browser.
 *
 *   <script src="/static/tasktypes.js"></script>          (window.tasktypes)
 *   import tasktypes from "/static/tasktypes.mjs";          (an ES module)
 *
 *   const task = tasktypes.run("countdown", [10, 0.5], {
 *     onProgress: p => bar.value = p.progress,     // {progress, status, message, duration}
 *     onSuccess: result => show(result),
 *     onFailure: error => alert(error.code + " " + error.message),
 *     onCancel: p => note("cancelled"),
 *     onEnd: outcome => done(outcome.kind),         // exactly once, whatever happened
 *   });
 *   task.cancel();
 *
 * Plain JavaScript, no build step, no dependency. Requests go over JSON-RPC
 * 2.0 (POST, application/json) to the service's /jsonrpc, found next to this
 * file unless `url` says otherwise.
 *
 * Following a task costs one request per `interval` at most: each round is
 * `m_wait(id, interval)`, which the server answers the moment the task ends,
 * so an end is seen at once, and otherwise after `interval` with the current
 * progress. With `onLog`, the same request is a batch that also reads the
 * new lines of `m_log`. Network errors (and a store that is briefly
 * unavailable) are retried with a doubling pause; after `retries` failures in
 * a row the task is given up with onFailure (code null, name "NetworkError").
 */
(function (global) {
  "use strict";

  var DEFAULTS = {
    interval: 500,        // ms between progress reads, at least
    retries: 6,           // failed reads in a row before giving up
    maxBackoff: 8000,     // ms, longest pause between retries
    url: null,            // the JSON-RPC endpoint; null: next to this script
  };
  // JSON-RPC codes of transient server states (contract: StoreUnavailable, Busy).
  var TRANSIENT = { "-32010": true, "-32011": true };

  var scriptUrl = global.document && global.document.currentScript
    ? global.document.currentScript.src : null;

  function defaultUrl() {
    if (DEFAULTS.url) return DEFAULTS.url;
    if (scriptUrl) return new URL("../jsonrpc", scriptUrl).href;
    return "/jsonrpc";
  }

  /** An error of the service (`code`, `message`, `data.faultcode`) or of
   *  the network (`code` null, `name` "NetworkError"). */
  function TaskTypesError(message, code, data, name) {
    var error = new Error(message);
    error.name = name || "TaskTypesError";
    error.code = code === undefined ? null : code;
    error.data = data || {};
    error.faultcode = error.data.faultcode || null;
    return error;
  }

  var nextId = 1;

  /** POST one JSON-RPC request, or a batch (an array): the parsed reply.
   *  Rejects with a NetworkError when no JSON-RPC reply came back. */
  function post(url, body, signal) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      signal: signal,
      credentials: "same-origin",
    }).then(function (response) {
      return response.text().then(function (text) {
        try {
          return JSON.parse(text);
        } catch (e) {
          throw TaskTypesError("HTTP " + response.status + " " + response.statusText +
                               ": " + text.slice(0, 200), null, {}, "NetworkError");
        }
      });
    }, function (e) {
      if (e && e.name === "AbortError") throw e;
      throw TaskTypesError("network error: " + (e && e.message), null, {}, "NetworkError");
    });
  }

  function request(method, params) {
    return { jsonrpc: "2.0", method: method, params: params, id: nextId++ };
  }

  function unwrap(reply) {
    if (reply && reply.error) {
      throw TaskTypesError(reply.error.message, reply.error.code, reply.error.data);
    }
    if (!reply || !("result" in reply)) {
      throw TaskTypesError("not a JSON-RPC reply", null, {}, "NetworkError");
    }
    return reply.result;
  }

  /** Call one method: a promise of its result, or of a TaskTypesError. */
  function call(method, params, options) {
    var url = (options && options.url) || defaultUrl();
    return post(url, request(method, params || [])).then(unwrap);
  }

  function isTransient(error) {
    return error.name === "NetworkError" || TRANSIENT[String(error.code)] === true;
  }

  function sleep(ms, signal) {
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", function () {
        clearTimeout(timer); resolve();
      });
    });
  }

  function progressOf(state) {
    return { progress: state.progress, status: state.status,
             message: state.message || "", duration: state.duration };
  }

  function isFinished(status) {
    return status === "done" || status === "failed" || status === "cancelled";
  }

  /** Follow a task: `submit` is a promise of its id. */
  function follow(method, submit, callbacks) {
    var options = {};
    var key;
    for (key in DEFAULTS) options[key] = DEFAULTS[key];
    for (key in callbacks || {}) if (callbacks[key] !== undefined) options[key] = callbacks[key];
    var url = options.url || defaultUrl();
    var waitSeconds = options.interval / 1000;
    var last = null;          // the last progress reported
    var logAfter = 0;         // the last log line's seq
    var ended = false;
    var wake = null;          // aborts a pending wait when cancel() is called
    var resolveDone;
    var done = new Promise(function (resolve) { resolveDone = resolve; });

    function fire(name, value) {
      var callback = options[name];
      if (typeof callback !== "function") return;
      try {
        callback(value);
      } catch (e) {
        setTimeout(function () { throw e; });  // reported, never breaks the follow
      }
    }

    function report(state) {
      var p = progressOf(state);
      if (!last || last.progress !== p.progress || last.status !== p.status ||
          last.message !== p.message) {
        last = p;
        fire("onProgress", p);
      }
    }

    function end(kind, value) {
      if (ended) return;
      ended = true;
      if (wake) wake.abort();
      if (kind === "success") fire("onSuccess", value);
      else if (kind === "failure") fire("onFailure", value);
      else fire("onCancel", value);
      var outcome = { kind: kind, progress: last };
      outcome[kind === "success" ? "result" : kind === "failure" ? "error" : "cancelled"] = value;
      fire("onEnd", outcome);
      resolveDone(outcome);
    }

    function logLines(lines) {
      if (lines && lines.length) {
        logAfter = lines[lines.length - 1].seq;
        fire("onLog", lines);
      }
    }

    /** One round: the state after m_wait, with the new log lines if asked. */
    function read(id) {
      wake = new AbortController();
      var waitCall = request(method + "_wait", [id, waitSeconds]);
      if (typeof options.onLog !== "function") {
        return post(url, waitCall, wake.signal).then(unwrap);
      }
      var logCall = request(method + "_log", [id, logAfter]);
      return post(url, [waitCall, logCall], wake.signal).then(function (replies) {
        // One object instead of an array: the batch as a whole was refused
        // (-32600, say); its error is the one to report.
        if (!Array.isArray(replies)) { unwrap(replies); }
        var byId = {};
        replies.forEach(function (r) { byId[r.id] = r; });
        var state = unwrap(byId[waitCall.id]);
        try { logLines(unwrap(byId[logCall.id])); } catch (e) { /* a log is a bonus */ }
        return state;
      });
    }

    function finish(id, state) {
      if (state.status === "cancelled") return end("cancel", last);
      // done or failed: m_result gives the value, or the error with its code
      return withRetries(function () { return call(method + "_result", [id], { url: url }); })
        .then(function (result) { end("success", result); },
              function (error) { end("failure", error); });
    }

    function withRetries(attempt) {
      var failures = 0;
      function again() {
        return attempt().catch(function (error) {
          if (ended || (error && error.name === "AbortError")) throw error;
          if (!isTransient(error) || ++failures > options.retries) throw error;
          var pause = Math.min(options.maxBackoff, options.interval * Math.pow(2, failures));
          return sleep(pause).then(again);
        });
      }
      return again();
    }

    function loop(id) {
      var started = Date.now();
      return withRetries(function () { return read(id); }).then(function (state) {
        if (ended) return;
        report(state);
        if (isFinished(state.status)) return finish(id, state);
        // A server that answered early (a short TASKTYPES_MAX_WAIT) is not
        // asked again before `interval` has passed.
        return sleep(Math.max(0, options.interval - (Date.now() - started)))
          .then(function () { return loop(id); });
      }, function (error) {
        if (error && error.name === "AbortError") {
          return ended ? undefined : loop(id);
        }
        end("failure", error);
      });
    }

    var taskId = submit.then(function (id) {
      handle.id = id;
      return id;
    });
    taskId.then(function (id) {
      if (!ended) return loop(id);
    }, function (error) {
      end("failure", error);
    });

    var handle = {
      id: null,
      /** A promise of the task id (null if it could not be started). */
      taskId: taskId.catch(function () { return null; }),
      /** A promise of the outcome given to onEnd. */
      done: done,
      /** Cancel the task; a promise of its progress after the cancel. */
      cancel: function () {
        return taskId.then(function (id) {
          return call(method + "_cancel", [id], { url: url });
        }).then(function (state) {
          if (!ended) {
            report(state);
            if (isFinished(state.status)) finish(handle.id, state);
          }
          return progressOf(state);
        });
      },
    };
    return handle;
  }

  /** Start `method` with `params` (an array) and follow it to its end. */
  function run(method, params, callbacks) {
    var url = (callbacks && callbacks.url) || defaultUrl();
    var submit = call(method, params || [], { url: url }).then(function (info) {
      return info.task_id;
    });
    return follow(method, submit, callbacks);
  }

  /** Follow a task that was started elsewhere. */
  function attach(method, taskId, callbacks) {
    return follow(method, Promise.resolve(taskId), callbacks);
  }

  global.tasktypes = {
    run: run,
    attach: attach,
    call: call,
    defaults: DEFAULTS,
    TaskTypesError: TaskTypesError,
  };
})(typeof window !== "undefined" ? window : globalThis);
