// The chat: questions with an image, a video or a recording, answers streamed with the frames the model imagined
// and, on request, spoken.
import { $, acceptDrops, api, element, serverEvents, showStatus } from "./api.js";

const state = { model: null, steps: false, messages: [], attachment: null, recording: null, recorder: null };

export async function loadModels() {
  try {
    const { data } = await (await api("/v1/models")).json();
    const chat = data.find((card) => card.output_modalities.includes("text"));
    state.model = chat.id;
    state.steps = chat.max_world_steps != null;
    $("steps-label").hidden = !state.steps;
    if (state.steps) {
      $("steps").max = chat.max_world_steps;
      $("steps").value = chat.num_world_steps;
      $("steps-value").value = chat.num_world_steps;
    }
    $("speak").disabled = !chat.output_modalities.includes("audio");
    $("record").disabled = !chat.input_modalities.includes("audio") || !window.MediaRecorder;
    document.title = `TheWorld: ${chat.id}`;
    showStatus("");
  } catch (error) {
    showStatus(error.message);
  }
  document.body.dataset.ready = "true";
}

function readAsDataURL(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function preview(kind, url) {
  const shown = element(kind === "video" ? "video" : kind === "audio" ? "audio" : "img", kind);
  shown.src = url;
  if (kind === "image") shown.alt = "attached image";
  else shown.controls = true;
  return shown;
}

async function attach(file) {
  const kind = file.type.startsWith("video/") ? "video" : file.type.startsWith("image/") ? "image" : null;
  if (!kind) {
    showStatus(`${file.name}: not an image or a video; attach a PNG, JPEG, MP4 or WebM`);
    return;
  }
  state.attachment = { kind, url: await readAsDataURL(file) };
  showStatus("");
  showAttachments();
}

function showAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  const chip = (shown, label, forget) => {
    const remove = element("button", "remove", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `remove the ${label}`);
    remove.onclick = () => {
      forget();
      showAttachments();
    };
    const item = element("div", "chip");
    item.append(shown, remove);
    box.append(item);
  };
  if (state.attachment) {
    const { kind, url } = state.attachment;
    chip(preview(kind, url), kind, () => (state.attachment = null));
  }
  if (state.recording) chip(preview("audio", state.recording.url), "recording", () => (state.recording = null));
}

// The ear hears the voice as recorded: echo cancellation, noise suppression and gain control reshape speech.
const RAW_VOICE = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
const AUDIO_FORMATS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "mp4", "audio/wav": "wav" };

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: RAW_VOICE });
  } catch (error) {
    showStatus(`the microphone is not available (${error.message}); allow it for this page`);
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  const started = performance.now();
  const button = $("record");
  const timer = setInterval(() => {
    const seconds = (performance.now() - started) / 1000;
    button.dataset.seconds = seconds.toFixed(1);
    button.textContent = `Stop (${seconds.toFixed(1)} s)`;
  }, 100);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    clearInterval(timer);
    stream.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    button.textContent = "Record";
    button.setAttribute("aria-pressed", "false");
    delete button.dataset.seconds;
    const blob = new Blob(chunks, { type: recorder.mimeType });
    const format = AUDIO_FORMATS[blob.type.split(";")[0]];
    if (!format) {
      showStatus(`this browser records ${blob.type}, which the server cannot read; try Chrome or Firefox`);
      return;
    }
    const data = (await readAsDataURL(blob)).split(",")[1];
    state.recording = { format, data, url: URL.createObjectURL(blob) };
    showAttachments();
  };
  recorder.start();
  state.recorder = recorder;
  button.setAttribute("aria-pressed", "true");
  button.textContent = "Stop";
}

function hasMedia(messages) {
  const visual = (part) => part.type === "image_url" || part.type === "video_url";
  return messages.some((message) => Array.isArray(message.content) && message.content.some(visual));
}

function showQuestion(parts) {
  const item = element("li", "user");
  for (const part of parts) {
    if (part.type === "text") item.append(element("p", "text", part.text));
    else if (part.type === "image_url") item.append(preview("image", part.image_url.url));
    else if (part.type === "video_url") item.append(preview("video", part.video_url.url));
    else if (part.type === "input_audio") item.append(preview("audio", state.recording.url));
  }
  $("history").append(item);
}

// An answer as it streams in: its text, the world it imagined (one strip per image: what it saw, then each
// imagined step), its spoken form, or the server's refusal.
function showAnswer() {
  const item = element("li", "assistant");
  const text = element("p", "text");
  item.append(text);
  item.dataset.state = "streaming";
  $("history").append(item);
  return {
    text: (value) => (text.textContent = value),
    world(world) {
      for (const { image, frames } of world) {
        const strip = element("figure", "strip");
        const imagined = frames.length - 1;
        const then = imagined ? `, then ${imagined} imagined step${imagined > 1 ? "s" : ""}` : "";
        const caption = `image ${image + 1}: what it saw${then}`;
        strip.append(element("figcaption", "", caption));
        const row = element("div", "frames");
        frames.forEach((url, step) => {
          const frame = element("img");
          frame.src = url;
          frame.alt = step === 0 ? "the frame it saw" : `imagined step ${step}`;
          row.append(frame);
        });
        strip.append(row);
        item.append(strip);
      }
    },
    speak(data) {
      const player = preview("audio", `data:audio/wav;base64,${data}`);
      item.append(player);
      player.play().catch(() => {}); // a browser that blocks autoplay still shows the player
    },
    fail(message) {
      item.append(element("p", "error", message));
      item.dataset.state = "error";
    },
    done: () => (item.dataset.state = "done"),
  };
}

async function ask(messages, answer) {
  const body = { model: state.model, messages, stream: true };
  if (state.steps && hasMedia(messages)) {
    body.num_world_steps = Number($("steps").value);
    body.return_world_frames = true;
  }
  if ($("speak").checked) {
    body.modalities = ["text", "audio"];
    body.audio = { voice: "default", format: "wav" };
  }
  const headers = { "Content-Type": "application/json" };
  const response = await api("/v1/chat/completions", { method: "POST", headers, body: JSON.stringify(body) });
  let text = "";
  for await (const event of serverEvents(response)) {
    if (event.error) throw new Error(event.error.message);
    if (event.world) answer.world(event.world);
    for (const choice of event.choices || []) {
      if (choice.delta.content) answer.text((text += choice.delta.content));
      if (choice.delta.audio && choice.delta.audio.data) answer.speak(choice.delta.audio.data);
    }
  }
  answer.done();
  return text;
}

async function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  const parts = [];
  if (state.attachment) {
    const { kind, url } = state.attachment;
    parts.push(kind === "video" ? { type: "video_url", video_url: { url } } : { type: "image_url", image_url: { url } });
  }
  if (state.recording) {
    const { data, format } = state.recording;
    parts.push({ type: "input_audio", input_audio: { data, format } });
  }
  if (text) parts.push({ type: "text", text });
  if (!parts.length || $("send").disabled) return;
  if (!state.model) await loadModels(); // the status line says why there is none (often: the API key)
  if (!state.model) return;
  const messages = [...state.messages, { role: "user", content: parts }];
  showQuestion(parts);
  $("message").value = "";
  state.attachment = state.recording = null;
  showAttachments();
  const answer = showAnswer();
  $("send").disabled = true;
  try {
    const reply = await ask(messages, answer);
    state.messages = [...messages, { role: "assistant", content: reply }];
  } catch (error) {
    answer.fail(error.message); // a refused turn stays out of the history the next question carries
  } finally {
    $("send").disabled = false;
    $("composer").scrollIntoView({ block: "end" }); // the answer just above, the next question ready
  }
}

export function startChat() {
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("attach").addEventListener("change", () => {
    if ($("attach").files.length) attach($("attach").files[0]);
    $("attach").value = "";
  });
  $("record").addEventListener("click", toggleRecording);
  $("steps").addEventListener("input", () => ($("steps-value").value = $("steps").value));
  $("clear").onclick = () => {
    state.messages = [];
    $("history").replaceChildren();
  };
  acceptDrops($("chat"), (files) => attach(files[0]));
}
