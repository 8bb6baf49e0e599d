package login

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/comstockloan/idp/storage"
)

const langCookie = "idp_lang"

type langKey struct{}

// langChoice is the page language of one request, picked on first use:
// the auth request's ui_locales costs a read or two that a request which
// only redirects never needs.
type langChoice struct {
	once sync.Once
	pick func() string
	lang string
	// flow is the flow the handler loaded (flowKnown), and ar its auth
	// request (authRequestKnown), so the pick does not read them again.
	flow *storage.LoginFlow
	ar   *storage.AuthRequest
}

// flowKnown hands the language choice of r the flow its handler loaded:
// a page that renders after loading its flow then reads it once, not
// again for the auth request's ui_locales.
func flowKnown(r *http.Request, f *storage.LoginFlow) {
	if c, ok := r.Context().Value(langKey{}).(*langChoice); ok {
		c.flow = f
	}
}

// authRequestKnown is flowKnown for the auth request the handler loaded.
func authRequestKnown(r *http.Request, ar *storage.AuthRequest) {
	if c, ok := r.Context().Value(langKey{}).(*langChoice); ok {
		c.ar = ar
	}
}

func (c *langChoice) get() string {
	c.once.Do(func() { c.lang = c.pick() })
	return c.lang
}

// withLanguage picks the page language, in this order:
//
//  1. ?lang=ja|en: the customer's own click on the language switch;
//  2. the OIDC ui_locales of the current auth request, its first tag we
//     have pages for, unless the customer clicked the switch during this
//     auth request;
//  3. the idp_lang cookie, which remembers the last click;
//  4. Accept-Language;
//  5. Japanese.
//
// The click comes before ui_locales although the RP asked: a switch that
// did nothing would strand a customer whose RP guessed wrong. The cookie
// records which auth request the click was made in, so later pages of
// that login keep the customer's choice and the next login follows its
// RP again.
func (h *Handler) withLanguage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &langChoice{}
		// The pick sees the request the handler gets, and so the flow
		// it hands over (flowKnown).
		r = r.WithContext(context.WithValue(r.Context(), langKey{}, c))
		if q := r.URL.Query().Get("lang"); q == "ja" || q == "en" {
			c.pick = func() string { return q }
			h.rememberLanguage(w, r, q)
		} else {
			c.pick = func() string { return h.pickLanguage(r) }
			// A form POST may move the flow to a new handle (S3 → S4,
			// and then the code is mailed in the page language); after
			// that the handle in the request finds no flow, so pick now.
			// The passkey JSON calls need the language only for an error
			// text, and pay the reads only then.
			if r.Method == http.MethodPost && !wantsJSON(r) {
				c.get()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// rememberLanguage stores the customer's click as lang[.authRequestID].
func (h *Handler) rememberLanguage(w http.ResponseWriter, r *http.Request, lang string) {
	value := lang
	if id := h.currentAuthRequestID(r); id != "" && cookieSafe(id) {
		value += "." + id
	}
	http.SetCookie(w, &http.Cookie{
		Name: langCookie, Value: value, Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// cookieSafe: the OP's IDs are UUIDs; anything else is not written into
// a cookie (net/http would drop bytes and log it).
func cookieSafe(s string) bool {
	return !strings.ContainsFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	})
}

func (h *Handler) pickLanguage(r *http.Request) string {
	clicked, clickedIn := "", ""
	if c, err := r.Cookie(langCookie); err == nil {
		lang, in, _ := strings.Cut(c.Value, ".")
		if lang == "ja" || lang == "en" {
			clicked, clickedIn = lang, in
		}
	}
	if id := h.currentAuthRequestID(r); id != "" && (clicked == "" || clickedIn != id) {
		if lang := h.uiLocalesLanguage(r, id); lang != "" {
			return lang
		}
	}
	if clicked != "" {
		return clicked
	}
	return fromAcceptLanguage(r.Header.Get("Accept-Language"))
}

// currentAuthRequestID is the auth request this request belongs to: S1's
// authRequestID parameter, else the current flow's; "" for none (or when
// the store cannot say: the handler reports that failure itself).
func (h *Handler) currentAuthRequestID(r *http.Request) string {
	if r.URL.Path == pathLogin {
		if id := r.URL.Query().Get("authRequestID"); id != "" {
			if storableText(id, maxAuthRequestIDBytes) {
				return id
			}
			return ""
		}
	}
	if c, ok := r.Context().Value(langKey{}).(*langChoice); ok && c.flow != nil {
		return c.flow.AuthRequestID
	}
	if h.cookie(r, flowCookie) == "" {
		return "" // no read for requests outside a login
	}
	f, err := h.currentFlow(r)
	if err != nil {
		return ""
	}
	return f.AuthRequestID
}

// uiLocalesLanguage is the first of the auth request's ui_locales that we
// have pages for, by primary subtag (en-US is en); "" when none.
func (h *Handler) uiLocalesLanguage(r *http.Request, authRequestID string) string {
	c, _ := r.Context().Value(langKey{}).(*langChoice)
	ar := (*storage.AuthRequest)(nil)
	if c != nil && c.ar != nil && c.ar.ID == authRequestID {
		ar = c.ar
	} else {
		var err error
		if ar, err = h.store.AuthRequestByID(r.Context(), authRequestID); err != nil {
			return ""
		}
	}
	for _, tag := range ar.UILocales {
		primary, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if primary == "ja" || primary == "en" {
			return primary
		}
	}
	return ""
}

func languageFrom(ctx context.Context) string {
	if c, ok := ctx.Value(langKey{}).(*langChoice); ok {
		return c.get()
	}
	return "ja"
}

// fromAcceptLanguage returns "en" or "ja", whichever the header prefers;
// "ja" when it names neither.
func fromAcceptLanguage(header string) string {
	type choice struct {
		lang string
		q    float64
		pos  int
	}
	var choices []choice
	for i, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if primary != "ja" && primary != "en" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > 0 {
			choices = append(choices, choice{primary, q, i})
		}
	}
	if len(choices) == 0 {
		return "ja"
	}
	sort.SliceStable(choices, func(a, b int) bool { return choices[a].q > choices[b].q })
	return choices[0].lang
}

// wantsJSON: a call of the page script (it sends and accepts JSON), not a
// form post.
func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") ||
		strings.HasPrefix(r.Header.Get("Accept"), "application/json")
}
