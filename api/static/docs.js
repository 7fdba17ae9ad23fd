// Starts Swagger UI on /docs (api/templates/swagger_ui.html): a file, not an inline script,
// so the page's Content-Security-Policy can refuse every inline script.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    ...JSON.parse(root.dataset.config || "{}"),
  });
});
