// featurestore UI: a filter box for the catalog tables and auto-submitting selects.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", () => {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      for (const row of document.querySelectorAll("table.filterable tbody tr")) {
        const text = row.textContent.toLowerCase();
        row.hidden = !words.every((w) => text.includes(w));
      }
      // A group (the features of one view) with no row left is hidden too.
      for (const group of document.querySelectorAll("section.group")) {
        group.hidden = !group.querySelector("tbody tr:not([hidden])");
      }
    });
  }
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => {
      // A new selection needs other inputs: drop the old ones before submitting.
      for (const input of select.form.querySelectorAll("input")) input.disabled = true;
      select.form.submit();
    });
  }
});
