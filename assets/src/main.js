// credtool's console bundle: `make assets` builds it into static/vendor/credtool-console.js.
// Each part enhances the elements that ask for it and leaves the page working without it.
import { enhanceEditors } from "./editor.js";
import { enhanceGrids } from "./grid.js";
import { enhanceCharts } from "./chart.js";
import { enhanceSchemaPanels, listenToSchemaPanels } from "./schema.js";
import { listenForCharts } from "./saved.js";

function enhance(root) {
  enhanceEditors(root);
  enhanceSchemaPanels(root);
  enhanceGrids(root);
  enhanceCharts(root);
}

listenToSchemaPanels();
listenForCharts();
document.addEventListener("DOMContentLoaded", () => enhance(document));
document.addEventListener("htmx:load", (event) => enhance(event.target));
