// Optional progressive enhancement of the login pages (the pages work
// without it): the show/hide eye of password fields, and focus on a
// server-side error that no field claims.
document.querySelectorAll("button[data-toggle-password]").forEach(function (eye) {
  var field = document.getElementById(eye.getAttribute("data-toggle-password"));
  if (!field) return;
  function show(on) {
    field.type = on ? "text" : "password";
    eye.setAttribute("aria-pressed", on ? "true" : "false");
    eye.setAttribute("aria-label", eye.getAttribute(on ? "data-label-hide" : "data-label-show"));
  }
  eye.addEventListener("click", function () { show(field.type === "password"); });
  // Submit it masked, so a password manager still sees a password field.
  if (field.form) field.form.addEventListener("submit", function () { show(false); });
  field.classList.add("has-eye");
  eye.hidden = false;
});

// A field the error is about has autofocus (templates.invalidAttrs); any
// other server-side error gets the focus itself, so keyboard and screen
// reader users start at the message.
(function () {
  var msg = document.getElementById("error");
  if (msg && !document.querySelector("[aria-invalid=true]")) msg.focus();
})();
