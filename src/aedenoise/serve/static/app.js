// The page of `aedenoise serve`: pick or drop an image, choose model and strength, denoise
// through POST /api/denoise, compare before/after with a split slider and 1:1 pixels, download.
"use strict";
const $ = (id) => document.getElementById(id);
const SHOWABLE = ["image/png", "image/jpeg", "image/webp", "image/bmp"];  // what a browser draws itself
let chosen = null;
let urls = [];  // object URLs on show: revoked when the next result replaces them

function showError(message) { $("error").textContent = message; $("error").hidden = !message; }

async function detailOf(response) {
  try { return (await response.json()).detail || response.statusText; } catch (e) { return response.statusText; }
}

async function loadModels() {
  const response = await fetch("/api/models");
  const data = await response.json();
  $("backend").textContent = "backend: " + data.backend;
  for (const m of data.models) {
    const option = new Option(m.name === "auto" ? "auto (the shipped photo model)" : m.name, m.name);
    option.title = m.description;
    $("model").add(option);
  }
  $("model").value = data.default;
  const help = () => { const o = $("model").selectedOptions[0]; $("model-help").textContent = o ? o.title : ""; };
  $("model").addEventListener("change", help);
  help();
}

function choose(file) {
  chosen = file || null;
  $("filename").textContent = chosen ? chosen.name + " (" + Math.round(chosen.size / 1024) + " KB)" : "";
  $("go").disabled = !chosen;
  showError("");
}

async function previewOf(blob, name) {  // an 8-bit PNG the browser can draw (TIFF, say)
  if (SHOWABLE.includes(blob.type)) return URL.createObjectURL(blob);
  const form = new FormData();
  form.append("file", blob, name);
  const response = await fetch("/api/preview", { method: "POST", body: form });
  if (!response.ok) throw new Error(await detailOf(response));
  return URL.createObjectURL(await response.blob());
}

function denoise() {
  if (!chosen) return;
  showError("");
  const input = chosen;  // the file sent, even if another is picked while this one is worked on
  const form = new FormData();
  form.append("file", input, input.name);
  form.append("model", $("model").value);
  form.append("sigma", $("auto").checked ? "auto" : $("strength").value);
  form.append("format", $("format").value);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/denoise");
  xhr.responseType = "blob";
  $("go").disabled = true;
  $("progress").hidden = false;
  $("bar").value = 0;
  $("status").textContent = "uploading";
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) $("bar").value = (100 * e.loaded) / e.total; };
  xhr.upload.onload = () => { $("bar").removeAttribute("value"); $("status").textContent = "denoising"; };
  xhr.onerror = () => { finish(); showError("the server did not answer"); };
  xhr.onload = async () => {
    try {
      if (xhr.status !== 200) {
        let message = xhr.statusText;
        try { message = JSON.parse(await xhr.response.text()).detail || message; } catch (e) { /* not JSON */ }
        const retry = xhr.getResponseHeader("Retry-After");
        throw new Error(message + (retry ? " (retry in " + retry + " s)" : ""));
      }
      await show(input, xhr.response, xhr.getResponseHeader("Content-Disposition"), xhr.getResponseHeader("X-Aedenoise-Sigma"));
    } catch (err) {
      showError(err.message);
    } finally {
      finish();
    }
  };
  xhr.send(form);
}

function finish() { $("go").disabled = !chosen; $("progress").hidden = true; }

async function show(input, blob, disposition, sigma) {
  const name = (/filename="([^"]+)"/.exec(disposition || "") || [null, "denoised.png"])[1];
  const before = await previewOf(input, input.name);  // both previews first: a failure keeps the last result
  const after = await previewOf(blob, name);
  const result = URL.createObjectURL(blob);
  for (const url of urls) URL.revokeObjectURL(url);
  urls = [before, after, result];
  $("before").src = before;
  $("after").src = after;
  $("download").href = result;
  $("download").download = name;
  $("info").textContent = name + (sigma ? " | strength used: " + sigma + " (0-255)" : "");
  $("viewer").hidden = false;
  $("download").dataset.ready = "1";
}

function split() {
  const v = $("split").value;
  $("after").style.clipPath = "inset(0 0 0 " + v + "%)";
  $("divider").style.left = v + "%";
}

function zoom(on, event) {
  const box = $("compare");
  if (on === box.classList.contains("zoomed")) return;
  const rect = box.getBoundingClientRect();
  const fx = event ? (event.clientX - rect.left) / rect.width : 0.5;
  const fy = event ? (event.clientY - rect.top) / rect.height : 0.5;
  box.classList.toggle("zoomed", on);
  $("zoom").checked = on;
  if (on) {  // the clicked point in the middle of the view, at 1:1
    box.scrollLeft = fx * $("before").naturalWidth - box.clientWidth / 2;
    box.scrollTop = fy * $("before").naturalHeight - box.clientHeight / 2;
  }
}

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
for (const kind of ["dragenter", "dragover"]) $("drop").addEventListener(kind, (e) => { e.preventDefault(); $("drop").classList.add("over"); });
for (const kind of ["dragleave", "drop"]) $("drop").addEventListener(kind, (e) => { e.preventDefault(); $("drop").classList.remove("over"); });
$("drop").addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
$("auto").addEventListener("change", () => {
  $("strength").disabled = $("auto").checked;
  $("strength-row").classList.toggle("disabled", $("auto").checked);
});
$("strength").addEventListener("input", () => { $("strength-value").textContent = $("strength").value; });
$("go").addEventListener("click", denoise);
$("split").addEventListener("input", split);
$("zoom").addEventListener("change", () => zoom($("zoom").checked));
$("compare").addEventListener("click", (e) => zoom(!$("compare").classList.contains("zoomed"), e));
loadModels().catch((err) => showError("could not list the models: " + err.message));
split();
