// Bearer tokens in the browser, shared by the reader page (app.js) and the console
// (console.js): read a token's claims (unverified: only to tell who it names and whether it
// is still usable; the server verifies every request), loaded before either script.
"use strict";

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch (_) {
    return null;
  }
}

function usable(token) {
  const c = token && claims(token);
  return Boolean(c && typeof c.sub === "string" && (!c.exp || c.exp * 1000 > Date.now()));
}
