// Starts Swagger UI on the gateway's own OpenAPI document. Kept out of index.html so the
// page works under "Content-Security-Policy: default-src 'self'" (no inline script).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // never call out to an online validator
    persistAuthorization: false, // tokens stay in memory only
    tryItOutEnabled: true,
  });
});
