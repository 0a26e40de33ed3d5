/* The task page (GET /): a form for each task type of the service, built
 * from its OpenRPC document (openrpc.json: methods marked
 * "x-tasktypes": {"role": "submit"}, params with JSON Schemas), and for each
 * started task a panel with its progress, status, message, elapsed time, a
 * cancel button, then its result or error. Everything it does with tasks
 * goes through tasktypes.js: it is also that helper's example. */
(function () {
  "use strict";
  var schemas = {};      // components.schemas of the document
  var MAX_DEPTH = 4;     // nested complex params shown as nested fieldsets
  var formCount = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  /** A schema without $ref and without the "or null" of an optional value:
   *  {schema, nullable}. */
  function resolve(schema) {
    var nullable = false;
    for (var i = 0; i < 8 && schema; i++) {
      if (schema.$ref) {
        schema = schemas[schema.$ref.split("/").pop()] || {};
      } else if (schema.anyOf) {
        var rest = schema.anyOf.filter(function (s) { return s.type !== "null"; });
        nullable = nullable || rest.length < schema.anyOf.length;
        schema = rest.length === 1 ? rest[0] : { anyOf: rest };
        if (rest.length !== 1) break;
      } else {
        break;
      }
    }
    var type = schema.type;
    if (Array.isArray(type)) {
      nullable = nullable || type.indexOf("null") >= 0;
      type = type.filter(function (t) { return t !== "null"; });
      // a complex type is written as an object (or an array of its fields)
      type = type.indexOf("object") >= 0 ? "object" : type[0];
    }
    return { schema: schema, type: type, nullable: nullable };
  }

  /** The input(s) of one param: an element, and read() giving its value. */
  function input(name, schema, required, depth) {
    var r = resolve(schema), s = r.schema, id = "f" + (++formCount);
    var label = el("label", { "for": id }, [el("span", { text: name + (required ? " *" : "") })]);
    var control, read;
    if (r.type === "object" && s.properties && depth < MAX_DEPTH) {
      var parts = Object.keys(s.properties).map(function (key) {
        return { key: key, field: input(key, s.properties[key], false, depth + 1) };
      });
      var fieldset = el("fieldset", {}, [el("legend", { text: name })]
        .concat(parts.map(function (p) { return p.field.node; })));
      return { node: fieldset, read: function () {
        var value = {}, any = false;
        parts.forEach(function (p) {
          var v = p.field.read();
          if (v !== null) { value[p.key] = v; any = true; }
        });
        return any || required ? value : null;
      } };
    }
    if (s.enum) {
      control = el("select", { id: id }, [el("option", { value: "", text: "" })]
        .concat(s.enum.map(function (v) { return el("option", { value: v, text: v }); })));
      read = function () { return control.value === "" ? null : control.value; };
    } else if (r.type === "boolean") {
      control = el("select", { id: id }, [el("option", { value: "", text: "" }),
        el("option", { value: "true", text: "true" }), el("option", { value: "false", text: "false" })]);
      read = function () { return control.value === "" ? null : control.value === "true"; };
    } else if (r.type === "integer" || r.type === "number") {
      control = el("input", { id: id, type: "number", step: r.type === "integer" ? "1" : "any" });
      if (s.minimum !== undefined && Math.abs(s.minimum) < 1e15) control.min = s.minimum;
      if (s.maximum !== undefined && Math.abs(s.maximum) < 1e15) control.max = s.maximum;
      read = function () { return control.value === "" ? null : Number(control.value); };
    } else if (r.type === "array") {
      var items = resolve(s.items || {});
      control = el("textarea", { id: id, rows: "3", "aria-describedby": id + "-help" });
      label.appendChild(el("span", { id: id + "-help", className: "muted", text: "one item per line" }));
      read = function () {
        var lines = control.value.split("\n").filter(function (line) { return line.trim() !== ""; });
        if (!lines.length) return null;
        return lines.map(function (line) {
          return items.type === "integer" || items.type === "number" ? Number(line) :
                 items.type === "boolean" ? line.trim() === "true" : line;
        });
      };
    } else if (r.type === "string" || r.type === undefined && !s.anyOf) {
      control = el("input", { id: id, type: "text" });
      if (s.maxLength !== undefined) control.maxLength = s.maxLength;
      if (s.pattern) control.title = "pattern: " + s.pattern;
      if (s.format) control.placeholder = s.format;
      read = function () { return control.value === "" && !required ? null : control.value; };
    } else {  // anything else: JSON
      control = el("textarea", { id: id, rows: "2", placeholder: "JSON" });
      read = function () { return control.value.trim() === "" ? null : JSON.parse(control.value); };
    }
    if (required && control.tagName !== "SELECT") control.required = true;
    label.appendChild(control);
    return { node: label, read: read };
  }

  function methodSection(method) {
    var fields = (method.params || []).map(function (p) {
      return { name: p.name, field: input(p.name, p.schema || {}, !!p.required, 0) };
    });
    var headingId = "m-" + method.name;
    var form = el("form", { "aria-labelledby": headingId },
      fields.map(function (f) { return f.field.node; })
        .concat([el("button", { type: "submit", text: "Start " + method.name })]));
    var panels = el("div", { className: "panels" });
    var section = el("section", { className: "method", id: "method-" + method.name,
                                  "aria-labelledby": headingId },
      [el("h3", { id: headingId, text: method.name }),
       method.summary ? el("p", {}, prose(method.summary)) : null, form, panels]);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var params = {};
      try {
        fields.forEach(function (f) { params[f.name] = f.field.read(); });
      } catch (err) {
        panels.prepend(el("p", { className: "error", role: "alert", text: "Bad input: " + err.message }));
        return;
      }
      start(method.name, params, panels);
    });
    return section;
  }

  /** Start a task and show it in a new panel at the top of `panels`. */
  function start(method, params, panels) {
    var panel = document.getElementById("panel-template").content.firstElementChild.cloneNode(true);
    var q = function (cls) { return panel.querySelector("." + cls); };
    q("panel-title").textContent = method;
    q("panel-progress").setAttribute("aria-label", "progress of " + method);
    panels.prepend(panel);
    var duration = 0, at = Date.now(), running = false;
    var ticker = setInterval(function () {
      var elapsed = duration + (running ? (Date.now() - at) / 1000 : 0);
      q("panel-elapsed").textContent = elapsed.toFixed(1) + " s";
    }, 100);

    var task = tasktypes.run(method, params, {
      onProgress: function (p) {
        q("panel-progress").value = p.progress;
        q("panel-status").textContent = p.status;
        q("panel-message").textContent = p.message;
        duration = p.duration; at = Date.now(); running = p.status === "running";
        panel.className = "panel " + p.status;
      },
      onSuccess: function (result) {
        q("panel-outcome").replaceChildren(el("h4", { text: "Result" }), show(result));
      },
      onFailure: function (error) {
        q("panel-outcome").replaceChildren(el("p", { className: "error", role: "alert",
          text: "Error " + error.code + (error.faultcode ? " " + error.faultcode : "") +
                ": " + error.message }));
        panel.className = "panel failed";
      },
      onCancel: function () {
        q("panel-outcome").replaceChildren(el("p", { text: "Cancelled." }));
      },
      onEnd: function () {
        running = false;
        q("panel-cancel").disabled = true;
        setTimeout(function () { clearInterval(ticker); }, 200);
      },
    });
    task.taskId.then(function (id) {
      if (id !== null) q("panel-title").textContent = method + " · task " + id;
    });
    q("panel-cancel").addEventListener("click", function () {
      q("panel-cancel").disabled = true;
      task.cancel().catch(function (error) {
        q("panel-cancel").disabled = false;
        q("panel-message").textContent = "cancel failed: " + error.message;
      });
    });
    q("panel-cancel").focus();
  }

  /** A docstring's text with its ``literals`` as code elements. */
  function prose(text) {
    return text.split("``").map(function (part, i) {
      return i % 2 ? el("code", { text: part }) : document.createTextNode(part);
    });
  }

  /** A result as elements: a complex one field by field, lists as lists. */
  function show(value) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      var dl = el("dl", { className: "fields result" });
      Object.keys(value).forEach(function (key) {
        dl.appendChild(el("dt", { text: key }));
        var dd = el("dd", { "data-field": key }, [show(value[key])]);
        dl.appendChild(dd);
      });
      return dl;
    }
    if (Array.isArray(value)) {
      return el("ul", {}, value.map(function (item) { return el("li", {}, [show(item)]); }));
    }
    return el("span", { className: "value", text: value === null ? "(none)" : String(value) });
  }

  fetch("openrpc.json").then(function (response) {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }).then(function (doc) {
    schemas = (doc.components && doc.components.schemas) || {};
    document.getElementById("service-title").textContent = (doc.info && doc.info.title) || "Tasks";
    document.title = (doc.info && doc.info.title) || "tasktypes";
    var submit = doc.methods.filter(function (m) {
      return m["x-tasktypes"] && m["x-tasktypes"].role === "submit";
    });
    var list = document.getElementById("methods");
    list.replaceChildren.apply(list, submit.map(methodSection));
    if (!submit.length) list.appendChild(el("p", { text: "This service has no task types." }));
  }).catch(function (error) {
    document.getElementById("load-error").textContent =
      "Could not read the service's methods (openrpc.json): " + error.message;
  });
})();
