// What every part of the page shares: the API (with the key, and the server's refusals as errors), Server-Sent
// Events, and small DOM helpers.

export const $ = (id) => document.getElementById(id);
export const KEY = "theworld-api-key";

function authorised(headers = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// A refusal's own line (OpenAI's {"error": {"message"}}), so that the page shows what the server said.
async function refusal(response) {
  try {
    const body = await response.json();
    if (body.error && body.error.message) return body.error.message;
  } catch (ignored) {
    // not JSON: the status line says what there is to say
  }
  return `${response.status} ${response.statusText}`;
}

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: authorised(options.headers) });
  } catch (error) {
    throw new Error(`cannot reach the server (${error.message}); is theworld serve running?`);
  }
  if (!response.ok) throw new Error(await refusal(response));
  return response;
}

// The events of a Server-Sent Events body, parsed; `data: [DONE]` ends them.
export async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const data = buffered.slice(0, end).split("\n").filter((line) => line.startsWith("data: "));
      buffered = buffered.slice(end + 2);
      for (const line of data) {
        if (line === "data: [DONE]") return;
        yield JSON.parse(line.slice(6));
      }
    }
  }
}

export function showStatus(message) {
  $("status").textContent = message;
  $("status").hidden = !message;
}

export function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text) made.textContent = text;
  return made;
}

// Files dropped on `zone` go to `take`; the zone is outlined while a file is over it.
export function acceptDrops(zone, take) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dropping");
    if (event.dataTransfer.files.length) take(event.dataTransfer.files);
  });
}
