// TheWorld's page on `theworld serve`: a chat that shows the frames the model imagined, and world generation as
// video jobs, both through the server's OpenAI-compatible API. Plain JavaScript modules, no build step.
import { $, KEY } from "./api.js";
import { loadModels, startChat } from "./chat.js";
import { startWorld } from "./world.js";

function showTab(name) {
  for (const tab of ["chat", "world"]) {
    $(tab).hidden = tab !== name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
  }
}

$("api-key").value = sessionStorage.getItem(KEY) || "";
$("api-key").addEventListener("change", () => {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  loadModels();
});
$("tab-chat").onclick = () => showTab("chat");
$("tab-world").onclick = () => showTab("world");
startChat();
startWorld();
loadModels();
