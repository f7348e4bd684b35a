// The World tab: a Cosmos spec, written or loaded, run as a video job; its progress, then its mp4 in the page.
import { $, acceptDrops, api } from "./api.js";

const SPEC_FIELDS = ["negative_prompt", "num_input_frames", "guidance", "num_steps", "fps", "top_p", "temperature"];
let specExtras = {};

// A spec as `theworld world` reads one: a JSON object (or a list of them), or a JSONL batch; the first sample.
function parseSpec(text) {
  let spec;
  try {
    spec = JSON.parse(text);
  } catch (error) {
    spec = JSON.parse(text.split("\n")[0]);
  }
  return Array.isArray(spec) ? spec[0] : spec;
}

async function loadSpec(file) {
  let spec;
  try {
    spec = parseSpec((await file.text()).trim());
  } catch (error) {
    showJobError(`${file.name}: not a JSON spec (${error.message})`);
    return;
  }
  showJobError("");
  $("world-prompt").value = spec.prompt || "";
  $("world-type").value = spec.inference_type || "";
  $("world-frames").value = spec.num_output_frames ?? "";
  $("world-seed").value = spec.seed ?? "";
  specExtras = Object.fromEntries(SPEC_FIELDS.filter((name) => spec[name] != null).map((name) => [name, spec[name]]));
  $("world-note").hidden = !spec.input_path;
  $("world-note").textContent = spec.input_path ? `The spec's input is ${spec.input_path}: choose that file here.` : "";
}

function showJobError(message) {
  if (message) $("job").hidden = false;
  $("job-error").textContent = message;
  $("job-error").hidden = !message;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function generate(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("prompt", $("world-prompt").value);
  const fields = { inference_type: $("world-type").value, num_output_frames: $("world-frames").value };
  Object.assign(fields, { seed: $("world-seed").value }, specExtras);
  for (const [name, value] of Object.entries(fields)) if (value !== "") form.append(name, value);
  if ($("world-input").files.length) form.append("input_reference", $("world-input").files[0]);
  const video = $("job-video");
  const download = $("job-download");
  if (video.src) URL.revokeObjectURL(video.src);
  video.removeAttribute("src");
  video.hidden = download.hidden = true;
  showJobError("");
  $("job").hidden = false;
  $("world-submit").disabled = true;
  try {
    let job = await (await api("/v1/videos", { method: "POST", body: form })).json();
    for (;;) {
      $("job-progress").value = job.progress;
      $("job-status").textContent = `${job.status.replace("_", " ")}, ${job.progress}%`;
      if (job.status === "completed" || job.status === "failed") break;
      await pause(250);
      job = await (await api(`/v1/videos/${job.id}`)).json();
    }
    if (job.status === "failed") throw new Error(job.error ? job.error.message : "the job failed");
    const mp4 = await (await api(`/v1/videos/${job.id}/content`)).blob();
    // The page keeps the mp4, so the server's copy goes: jobs count against --max-video-jobs until deleted.
    api(`/v1/videos/${job.id}`, { method: "DELETE" }).catch(() => {});
    video.src = download.href = URL.createObjectURL(mp4);
    video.hidden = download.hidden = false;
    video.play().catch(() => {});
  } catch (error) {
    showJobError(error.message);
  } finally {
    $("world-submit").disabled = false;
  }
}

export function startWorld() {
  acceptDrops($("world"), (files) => {
    const file = files[0];
    if (file.name.endsWith(".json") || file.name.endsWith(".jsonl")) loadSpec(file);
    else $("world-input").files = files;
  });
  $("spec-file").addEventListener("change", () => $("spec-file").files.length && loadSpec($("spec-file").files[0]));
  $("world-form").addEventListener("submit", generate);
}
