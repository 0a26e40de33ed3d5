/* The operator's dashboard: the task list (GET tasks) refreshed every two
 * seconds, counts per status, and one task's detail with its log followed
 * live (GET tasks/<id>?log_after=N) and a cancel button (m_cancel over
 * JSON-RPC, through tasktypes.js). The operator token stays in this tab's
 * sessionStorage and goes out only as the Bearer header of these requests. */
(function () {
  "use strict";
  var TOKEN_KEY = "tasktypes.operatorToken";
  var LIST_EVERY = 2000, DETAIL_EVERY = 1000;
  var $ = function (id) { return document.getElementById(id); };
  var filters = { method: "", status: "" };
  var next = null, listTimer = null, detailTimer = null;
  var selected = null;  // {id, method, logAfter}

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function get(path) {
    return fetch(path, { headers: { "Authorization": "Bearer " + token() },
                         cache: "no-store" }).then(function (response) {
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin("The token was refused (HTTP 401).");
        throw new Error("unauthorized");
      }
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
        return body;
      });
    });
  }

  function showLogin(message) {
    clearTimeout(listTimer); clearTimeout(detailTimer);
    $("board").classList.add("hidden");
    $("login").classList.remove("hidden");
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function showBoard() {
    $("login").classList.add("hidden");
    $("board").classList.remove("hidden");
    refresh();
  }

  function query(extra) {
    var params = new URLSearchParams();
    if (filters.method) params.set("method", filters.method);
    if (filters.status) params.set("status", filters.status);
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    var text = params.toString();
    return "tasks" + (text ? "?" + text : "");
  }

  function seconds(value) { return value ? value.toFixed(1) + " s" : "–"; }
  function clock(epoch) { return epoch ? new Date(epoch * 1000).toLocaleTimeString() : "–"; }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function row(task) {
    var tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.taskId = task.task_id;
    tr.setAttribute("aria-selected", String(selected && selected.id === task.task_id));
    cell(tr, String(task.task_id));
    cell(tr, task.method);
    cell(tr, "");
    var bar = document.createElement("progress");
    bar.max = 1;
    bar.setAttribute("aria-label", "progress of task " + task.task_id);
    cell(tr, "").appendChild(bar);
    cell(tr, ""); cell(tr, clock(task.submitted)); cell(tr, "");
    function open() { openDetail(task.task_id, task.method); }
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); }
    });
    return update(tr, task);
  }

  /** The live cells of a task's row. */
  function update(tr, task) {
    var cells = tr.cells;
    cells[2].textContent = task.status;
    cells[2].className = "status-" + task.status;
    cells[3].firstChild.value = task.progress;
    cells[4].textContent = task.message;
    cells[6].textContent = seconds(task.duration);
    return tr;
  }

  /** Show `tasks` in the table, keeping the rows (and keyboard focus) of
   *  tasks already shown in the same order. */
  function showTasks(tasks) {
    var body = $("tasks");
    var shown = Array.prototype.map.call(body.rows, function (tr) { return tr.dataset.taskId; });
    var same = shown.length === tasks.length && tasks.every(function (task, i) {
      return shown[i] === String(task.task_id);
    });
    if (same) {
      tasks.forEach(function (task, i) { update(body.rows[i], task); });
      return;
    }
    var focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.taskId : null;
    body.replaceChildren.apply(body, tasks.map(row));
    if (focused) {
      var again = body.querySelector('tr[data-task-id="' + focused + '"]');
      if (again) again.focus();
    }
  }

  function refresh() {
    clearTimeout(listTimer);
    get(query({ limit: 50 })).then(function (page) {
      $("list-error").textContent = "";
      showTasks(page.tasks);
      next = page.next;
      $("more").classList.toggle("hidden", !next);
      var counts = $("counts");
      counts.replaceChildren.apply(counts, ["queued", "running", "done", "failed", "cancelled"]
        .map(function (status) {
          var li = document.createElement("li");
          li.className = "status-" + status;
          li.dataset.status = status;
          li.textContent = status + ": " + ((page.counts || {})[status] || 0);
          return li;
        }));
      listTimer = setTimeout(refresh, LIST_EVERY);
    }, function (error) {
      if (error.message === "unauthorized") return;
      $("list-error").textContent = "Could not read the task list: " + error.message;
      listTimer = setTimeout(refresh, LIST_EVERY * 2);
    });
  }

  function more() {
    if (!next) return;
    clearTimeout(listTimer);  // the live refresh shows the first page only
    get(query({ limit: 50, cursor: next })).then(function (page) {
      page.tasks.forEach(function (task) { $("tasks").appendChild(row(task)); });
      next = page.next;
      $("more").classList.toggle("hidden", !next);
    });
  }

  function field(list, name, value) {
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 1);
    dd.dataset.field = name;
    list.appendChild(dt); list.appendChild(dd);
  }

  function openDetail(id, method) {
    clearTimeout(detailTimer);
    selected = { id: id, method: method, logAfter: 0 };
    $("detail-log").textContent = "";
    $("detail").classList.remove("hidden");
    $("detail-title").textContent = method + " · task " + id;
    Array.prototype.forEach.call(document.querySelectorAll("#tasks tr"), function (tr) {
      tr.setAttribute("aria-selected", String(Number(tr.dataset.taskId) === id));
    });
    followDetail();
  }

  function followDetail() {
    var current = selected;
    if (!current) return;
    get("tasks/" + current.id + "?log_after=" + current.logAfter).then(function (task) {
      if (selected !== current) return;
      $("detail-progress").value = task.progress;
      $("detail").className = "panel " + task.status;
      var fields = $("detail-fields");
      fields.replaceChildren();
      field(fields, "status", task.status);
      field(fields, "progress", Math.round(task.progress * 100) + " %");
      field(fields, "message", task.message);
      field(fields, "submitted", clock(task.submitted));
      field(fields, "started", clock(task.starttime));
      field(fields, "ended", clock(task.endtime));
      field(fields, "duration", seconds(task.duration));
      field(fields, "arguments", task.arguments);
      if ("result" in task) field(fields, "result", task.result);
      if (task.result_note) field(fields, "result", task.result_note);
      if (task.error) field(fields, "error", task.error.faultcode + " (" + task.error.code +
                                              "): " + task.error.message);
      var log = $("detail-log");
      task.log.forEach(function (line) {
        log.appendChild(document.createTextNode(
          new Date(line.time * 1000).toLocaleTimeString() + " " + line.level + " " +
          line.message + "\n"));
        current.logAfter = line.seq;
      });
      if (task.log.length) log.scrollTop = log.scrollHeight;
      var finished = ["done", "failed", "cancelled"].indexOf(task.status) >= 0;
      $("detail-cancel").disabled = finished;
      if (!finished) detailTimer = setTimeout(followDetail, DETAIL_EVERY);
    }, function (error) {
      if (error.message === "unauthorized" || selected !== current) return;
      $("detail-fields").replaceChildren();
      field($("detail-fields"), "error", error.message);
    });
  }

  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    showBoard();
  });
  $("logout").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("");
  });
  $("filters").addEventListener("submit", function (e) {
    e.preventDefault();
    filters.method = $("filter-method").value.trim();
    filters.status = $("filter-status").value;
    refresh();
  });
  $("more").addEventListener("click", more);
  $("detail-close").addEventListener("click", function () {
    clearTimeout(detailTimer);
    selected = null;
    $("detail").classList.add("hidden");
  });
  $("detail-cancel").addEventListener("click", function () {
    var current = selected;
    if (!current) return;
    $("detail-cancel").disabled = true;
    tasktypes.call(current.method + "_cancel", [current.id]).then(function () {
      clearTimeout(detailTimer);
      followDetail();
      refresh();
    }, function (error) {
      $("detail-cancel").disabled = false;
      field($("detail-fields"), "cancel", error.message);
    });
  });

  if (token()) showBoard(); else showLogin("");
})();
