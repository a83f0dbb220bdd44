// replybridge: the only script of the pages (Content-Security-Policy: script-src 'self').
// Every action also works without it; this adds conveniences only.
document.addEventListener("DOMContentLoaded", () => {
  // A checkbox with data-select-all="NAME" ticks every checkbox named NAME in its form.
  for (const box of document.querySelectorAll("input[data-select-all]")) {
    box.addEventListener("change", () => {
      for (const other of box.form.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`)) {
        other.checked = box.checked;
      }
    });
  }
});
