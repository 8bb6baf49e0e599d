/*
 * passkey.js — the WebAuthn calls of the hosted login pages. No framework,
 * no inline script (CSP script-src 'self'); include it with
 *   <script src="/static/passkey.js" defer></script>
 * Everything else on the pages works without JavaScript.
 *
 * Contract with the HTML (the page marks elements, this script wires them):
 *
 *   [data-passkey-login]     button: usernameless passkey login (S2 「パスキー認証」)
 *       POST /login/passkey/login/options            -> {"publicKey": {...}}
 *       navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(o.publicKey)})
 *       POST /login/passkey/login/finish  (application/json: credential.toJSON())
 *
 *   input[autocomplete~="webauthn"]  when present and the browser supports
 *       conditional mediation, passkey autofill starts on page load:
 *       POST /login/passkey/login/options?mediation=conditional, then
 *       navigator.credentials.get({mediation: "conditional", ...}), finished
 *       like the button. A button ceremony aborts it first.
 *
 *   [data-passkey-register]  button: create a passkey on this device (S5, S8)
 *       POST /login/passkey/register/options         -> {"publicKey": {...}}
 *       navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(o.publicKey)})
 *       POST /login/passkey/register/finish (application/json: credential.toJSON())
 *
 *   A button may override its two endpoints with data-options-url and
 *   data-finish-url (same origin only); the paths above are the defaults.
 *
 *   Server answers (options and finish alike):
 *       {"redirect": "/..."}                      -> location.assign(redirect)
 *       {"redirect": "/...", "signal": {rpId, userId, name, displayName, allAcceptedCredentialIds}}
 *                                                 (after a passkey sign-in) -> the signals below
 *                                                    first, then location.assign(redirect)
 *       {"error": "text", "code": "..."}          -> text shown in [data-passkey-error]
 *       code "unknown_credential" with "credentialId" and "rpId"
 *                                                 -> PublicKeyCredential.signalUnknownCredential({rpId, credentialId})
 *                                                    when the browser has it, so it can hide the stale passkey.
 *
 *   [data-passkey-signal]    element (S8, every load) with data-rp-id,
 *       data-user-id (base64url user handle), data-user-name,
 *       data-user-display-name and data-credential-ids (comma-separated
 *       base64url IDs, may be empty): on page load, the signals below.
 *
 *   The signals, each only when the browser has it:
 *       PublicKeyCredential.signalAllAcceptedCredentials({rpId, userId, allAcceptedCredentialIds})
 *           so the device hides the passkeys the server no longer accepts
 *           (say, deleted by the support centre), and
 *       PublicKeyCredential.signalCurrentUserDetails({rpId, userId, name, displayName})
 *           so the device labels the passkey as the registration did.
 *       They are hints: failures are ignored, and a redirect waits for
 *       them at most SIGNAL_WAIT_MS (the browser answers them at once; the
 *       bound only keeps a slow one from holding the customer back).
 *
 *   [data-passkey-error]     where messages go (give it role="alert"; it is
 *       un-hidden when a message is shown). Browser-side failures use texts
 *       from its attributes (the script has none of its own), so the page's
 *       language wins:
 *         data-msg-cancelled    NotAllowedError: cancelled or timed out
 *         data-msg-already      InvalidStateError: a passkey for this account is already on this device
 *         data-msg-unsupported  no PublicKeyCredential or no JSON helpers: the FAQ's guidance
 *                               (Windows Hello / iCloud キーチェーン / Google パスワードマネージャー)
 *         data-msg-security     SecurityError (optional)
 *         data-msg-failed       anything else (network, unexpected answers), and
 *                               any of the above the page leaves out
 *
 * All fetches are same-origin POSTs with credentials: "same-origin"; the
 * flow itself is identified by the page's cookie, never by this script.
 */
(function () {
  "use strict";

  var ENDPOINTS = {
    loginOptions: "/login/passkey/login/options",
    loginFinish: "/login/passkey/login/finish",
    registerOptions: "/login/passkey/register/options",
    registerFinish: "/login/passkey/register/finish"
  };

  // How long a redirect waits for the signals to be taken.
  var SIGNAL_WAIT_MS = 200;

  var conditionalAbort = null; // AbortController of a running autofill request
  var busy = false;            // one modal ceremony at a time

  function errorElement() {
    return document.querySelector("[data-passkey-error]");
  }

  // The texts are the page's (the templates' catalogue, in its language);
  // a kind the page leaves out reads as data-msg-failed.
  function pageMessage(kind) {
    var el = errorElement();
    return (el && (el.getAttribute("data-msg-" + kind) || el.getAttribute("data-msg-failed"))) || "";
  }

  function showError(text) {
    var el = errorElement();
    if (!el) {
      window.alert(text);
      return;
    }
    el.textContent = text;
    el.hidden = false;
  }

  function clearError() {
    var el = errorElement();
    if (el) {
      el.textContent = "";
      el.hidden = true;
    }
  }

  function supported(kind) {
    var pkc = window.PublicKeyCredential;
    if (!pkc || !navigator.credentials || typeof pkc.prototype.toJSON !== "function") {
      return false;
    }
    return kind === "register"
      ? typeof pkc.parseCreationOptionsFromJSON === "function"
      : typeof pkc.parseRequestOptionsFromJSON === "function";
  }

  // ServerError carries the server's own {"error","code",...} answer.
  function ServerError(body) {
    this.name = "ServerError";
    this.body = body;
  }

  function post(url, payload) {
    var init = {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(url, init).then(function (res) {
      return res.json().catch(function () {
        return {};
      }).then(function (body) {
        if (!res.ok || body.error) {
          throw new ServerError(body);
        }
        return body;
      });
    });
  }

  // hint calls one Signal API function, if the browser has it; it
  // resolves either way (a hint to the browser only).
  function hint(name, options) {
    var pkc = window.PublicKeyCredential;
    if (!pkc || typeof pkc[name] !== "function") {
      return Promise.resolve();
    }
    try {
      return Promise.resolve(pkc[name](options)).catch(function () {});
    } catch (e) {
      return Promise.resolve();
    }
  }

  // signal tells the device what the server accepts of s (the server's
  // {rpId, userId, name, displayName, allAcceptedCredentialIds}); it
  // resolves when the browser has taken both or after SIGNAL_WAIT_MS.
  function signal(s) {
    if (!s || typeof s.rpId !== "string" || typeof s.userId !== "string" || !s.rpId || !s.userId) {
      return Promise.resolve();
    }
    var calls = [];
    if (Array.isArray(s.allAcceptedCredentialIds)) {
      calls.push(hint("signalAllAcceptedCredentials", {
        rpId: s.rpId, userId: s.userId, allAcceptedCredentialIds: s.allAcceptedCredentialIds
      }));
    }
    if (typeof s.name === "string" && s.name && typeof s.displayName === "string") {
      calls.push(hint("signalCurrentUserDetails", {
        rpId: s.rpId, userId: s.userId, name: s.name, displayName: s.displayName
      }));
    }
    return Promise.race([
      Promise.all(calls),
      new Promise(function (resolve) { window.setTimeout(resolve, SIGNAL_WAIT_MS); })
    ]);
  }

  function handleServerAnswer(body) {
    if (body && typeof body.redirect === "string" && body.redirect) {
      var redirect = body.redirect;
      return signal(body.signal).then(function () {
        window.location.assign(redirect);
      });
    }
    throw new ServerError(body || {});
  }

  function report(err) {
    if (err instanceof ServerError) {
      var body = err.body || {};
      if (body.code === "unknown_credential" && body.credentialId && body.rpId) {
        hint("signalUnknownCredential", { rpId: body.rpId, credentialId: body.credentialId });
      }
      showError(body.error || pageMessage("failed"));
      return;
    }
    switch (err && err.name) {
      case "AbortError":
        return; // we aborted it ourselves (autofill replaced by the button)
      case "NotAllowedError":
        showError(pageMessage("cancelled"));
        return;
      case "InvalidStateError":
        showError(pageMessage("already"));
        return;
      case "SecurityError":
        showError(pageMessage("security"));
        return;
      case "NotSupportedError":
        showError(pageMessage("unsupported"));
        return;
      default:
        showError(pageMessage("failed"));
    }
  }

  function abortConditional() {
    if (conditionalAbort) {
      conditionalAbort.abort();
      conditionalAbort = null;
    }
  }

  // endpoint reads a button's data-options-url / data-finish-url, falling
  // back to the documented paths.
  function endpoint(button, attr, fallback) {
    var url = button && button.getAttribute(attr);
    return url && url.charAt(0) === "/" && url.charAt(1) !== "/" ? url : fallback;
  }

  function finishLogin(credential, finishURL) {
    if (!credential) {
      throw new ServerError({});
    }
    return post(finishURL, credential.toJSON()).then(handleServerAnswer);
  }

  function startButtonCeremony(button, run) {
    if (busy) {
      return;
    }
    busy = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    clearError();
    abortConditional();
    run().catch(report).then(function () {
      busy = false;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    });
  }

  function login(button) {
    if (!supported("login")) {
      showError(pageMessage("unsupported"));
      return;
    }
    startButtonCeremony(button, function () {
      return post(endpoint(button, "data-options-url", ENDPOINTS.loginOptions)).then(function (options) {
        return navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)
        });
      }).then(function (credential) {
        return finishLogin(credential, endpoint(button, "data-finish-url", ENDPOINTS.loginFinish));
      });
    });
  }

  function register(button) {
    if (!supported("register")) {
      showError(pageMessage("unsupported"));
      return;
    }
    startButtonCeremony(button, function () {
      return post(endpoint(button, "data-options-url", ENDPOINTS.registerOptions)).then(function (options) {
        return navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey)
        });
      }).then(function (credential) {
        if (!credential) {
          throw new ServerError({});
        }
        return post(endpoint(button, "data-finish-url", ENDPOINTS.registerFinish), credential.toJSON());
      }).then(handleServerAnswer);
    });
  }

  // Passkey autofill: silent unless it ends with an answer from the server.
  function startConditional() {
    if (!document.querySelector('input[autocomplete~="webauthn"]') || !supported("login") ||
        typeof PublicKeyCredential.isConditionalMediationAvailable !== "function" ||
        typeof AbortController !== "function") {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available || busy) {
        return;
      }
      var controller = new AbortController();
      var button = document.querySelector("[data-passkey-login]");
      conditionalAbort = controller;
      return post(endpoint(button, "data-options-url", ENDPOINTS.loginOptions) + "?mediation=conditional").then(function (options) {
        if (controller.signal.aborted) {
          return null;
        }
        return navigator.credentials.get({
          mediation: "conditional",
          signal: controller.signal,
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)
        });
      }).then(function (credential) {
        if (controller.signal.aborted || !credential) {
          return;
        }
        conditionalAbort = null;
        clearError();
        // The customer picked a passkey: from here on, failures are theirs to see.
        return finishLogin(credential, endpoint(button, "data-finish-url", ENDPOINTS.loginFinish)).catch(report);
      });
    }).catch(function () {
      // Autofill that never got going (no options, aborted, dismissed) is
      // not worth a message: the button still works.
    });
  }

  // S8: tell the device which passkeys are still valid and whose they are.
  function signalPage() {
    var el = document.querySelector("[data-passkey-signal]");
    if (!el) {
      return;
    }
    signal({
      rpId: el.getAttribute("data-rp-id"),
      userId: el.getAttribute("data-user-id"),
      name: el.getAttribute("data-user-name"),
      displayName: el.getAttribute("data-user-display-name") || "",
      allAcceptedCredentialIds: (el.getAttribute("data-credential-ids") || "").split(",").filter(function (id) {
        return id !== "";
      })
    });
  }

  function init() {
    signalPage();
    Array.prototype.forEach.call(document.querySelectorAll("[data-passkey-login]"), function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        login(button);
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-passkey-register]"), function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        register(button);
      });
    });
    startConditional();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
