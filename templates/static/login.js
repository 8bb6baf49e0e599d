// Optional progressive enhancement of the login pages (the pages work
// without it): the show/hide eye of password fields.
document.querySelectorAll("input[data-toggle-password]").forEach(function (box) {
  var field = document.getElementById(box.getAttribute("data-toggle-password"));
  if (!field) return;
  box.closest(".eye-toggle").hidden = false;
  box.addEventListener("change", function () { field.type = box.checked ? "text" : "password"; });
});
