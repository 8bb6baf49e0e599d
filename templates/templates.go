// Package templates holds the hosted login pages: html/template files, the
// message catalogue (Japanese first, English second) and static assets, all
// embedded in the binary.
package templates

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

//go:embed html/*.html
var pageFS embed.FS

//go:embed static
var staticFS embed.FS

// Languages the pages are rendered in; the first is the default.
var Languages = []string{"ja", "en"}

// Support is the loan centre's contact, shown on help and error pages.
type Support struct {
	Name  string
	Email string
	Phone string
	Hours string
}

// OTPMail is the configured one-time password mail as the FAQ names it:
// sender, subject and the sender's domain to allow.
type OTPMail struct {
	From, Subject, Domain string
}

// Page is what every page template renders. Message fields (Title, Error,
// Notice) are catalogue keys, never raw text, so both languages stay in step.
type Page struct {
	Lang      string
	SwitchURL string // the same page in the other language
	Title     string
	Error     string
	ErrorArgs []any // fill the %[n] verbs of Error's entry (minutes to wait, tries left)
	Notice    string
	SiteName  string
	Support   Support
	OTPMail   OTPMail // what the FAQ tells customers to look for

	ClientName        string // the RP the customer is signing in to
	LoginID           string
	LoginURL          string // S1 of the current auth request
	PasswordAllowed   bool   // false when the RP demands a passkey
	PasskeysAvailable bool
	MaskedEmail       string
	OTPDead           bool // the current code can no longer be used
	CrossDevice       bool // S5 after a cross-device passkey login
	OfferSkip         bool // S4 of the passkey offer: 「今はしない」 completes the login
	CreateBlocked     bool // S5 after lifetimes.recent_auth: 「パスキーを作成」 off, LoginURL restarts
	CreateOnly        bool // S5 of a staff enrolment link: no 「パスキー作成なしでログイン」
	DevMailURL        string
	PasskeyScript     bool // include /static/passkey.js

	Account *Account // S8 and its confirmation page
	HomeURL string   // the logged-out page's way back
	Fields  []Field  // hidden form fields (the logout confirmation re-posts the RP's parameters)
}

// Field is one hidden form field.
type Field struct{ Name, Value string }

// Account is what S8 (パスキー設定状況確認) shows of the signed-in user.
type Account struct {
	LoginID   string
	Passkeys  []Passkey
	ReturnURL string // 「戻る」: a vetted link back to the RP, or empty
	// CanAdd: the session may create a passkey now (rule 4). Otherwise
	// AddBlocked is the catalogue key saying why and what to do.
	CanAdd     bool
	AddBlocked string
	// NeedStepUp: the session is too old to delete (or add) without a
	// fresh passkey assertion first.
	NeedStepUp bool
	// StepUpURL / SignInURL are the ways to prove it again: a passkey
	// assertion (finish endpoint) or a whole new sign-in.
	StepUpOptionsURL string
	StepUpFinishURL  string
	SignInURL        string
	Target           *Passkey // the passkey of the delete confirmation
	// After a delete: whether the account is back on the password path.
	Deleted        bool
	BackToPassword bool
	// Signal is what passkey.js tells the device on every load (nil
	// without passkeys): the passkeys we accept and the user's names.
	Signal            *PasskeySignal
	AccountURL        string // S8 itself, keeping return_to
	RegisterFinishURL string // the add ceremony's finish endpoint, keeping return_to
	// Sessions are the customer's signed-in sessions, this one first;
	// OtherSessions counts the rest, which 「他の端末からログアウト」
	// (EndOthersURL) ends when EndOthersAllowed (a fresh authentication).
	Sessions         []SessionRow
	OtherSessions    int
	EndOthersURL     string
	EndOthersAllowed bool
}

// PasskeySignal is the WebAuthn Signal API data of S8's user
// (signalAllAcceptedCredentials, signalCurrentUserDetails).
type PasskeySignal struct {
	RPID          string
	UserID        string // base64url of the WebAuthn user handle
	Name          string
	DisplayName   string
	CredentialIDs string // comma-separated base64url credential IDs
}

// SessionRow is one signed-in session on S8; times are formatted.
type SessionRow struct {
	Browser  string // "" when the User-Agent names none we know
	OS       string
	Started  string
	LastUsed string
	Websites []string // the client names it signed in to
	Current  bool     // the session of this browser
}

// Passkey is one row of S8; times are already formatted for the page.
type Passkey struct {
	ID           string // base64url credential ID
	Name         string
	Created      string
	LastUsed     string // empty: never used to sign in
	Synced       bool   // backup eligible: 「同期済み」, else 「このデバイスのみ」
	Provider     string // who keeps it (「iCloud キーチェーン」), in the page's language; empty: unknown
	CloneWarning bool
	DeleteURL    string // its confirmation page, keeping return_to
}

// Set is the parsed pages, one tree per language and page.
type Set struct {
	pages map[string]map[string]*template.Template // lang → page → tree
}

// Load parses every page for every language and checks the catalogue.
func Load() (*Set, error) {
	if err := checkCatalogue(); err != nil {
		return nil, err
	}
	names, err := fs.Glob(pageFS, "html/*.html")
	if err != nil {
		return nil, fmt.Errorf("templates: listing pages: %w", err)
	}
	s := &Set{pages: map[string]map[string]*template.Template{}}
	for _, lang := range Languages {
		base, err := template.New("layout.html").Funcs(funcs(lang)).ParseFS(pageFS, "html/layout.html")
		if err != nil {
			return nil, fmt.Errorf("templates: parsing layout: %w", err)
		}
		s.pages[lang] = map[string]*template.Template{}
		for _, n := range names {
			name := strings.TrimSuffix(path.Base(n), ".html")
			if name == "layout" {
				continue
			}
			t, err := template.Must(base.Clone()).ParseFS(pageFS, n)
			if err != nil {
				return nil, fmt.Errorf("templates: parsing %s: %w", n, err)
			}
			s.pages[lang][name] = t
		}
	}
	return s, nil
}

// Render writes page name (e.g. "login") in lang; unknown languages fall
// back to Japanese.
func (s *Set) Render(w io.Writer, lang, name string, p *Page) error {
	byName, ok := s.pages[lang]
	if !ok {
		lang = Languages[0]
		byName = s.pages[lang]
	}
	t, ok := byName[name]
	if !ok {
		return fmt.Errorf("templates: no page %q", name)
	}
	p.Lang = lang
	// site_name and support.hours are configured in Japanese; an English
	// page names the site as its header does and gives the hours in English.
	if p.SiteName == "" || lang != Languages[0] {
		p.SiteName = Text(lang, "site.name")
	}
	p.Support.Hours = Hours(lang, p.Support.Hours)
	if err := t.ExecuteTemplate(w, "layout", p); err != nil {
		return fmt.Errorf("templates: rendering %s/%s: %w", lang, name, err)
	}
	return nil
}

// Text returns the catalogue entry for key in lang (the key itself when
// missing), for text outside templates such as e-mail and JSON errors.
func Text(lang, key string) string {
	if m, ok := catalogue[lang]; ok {
		if v, ok := m[key]; ok {
			return v
		}
	}
	if v, ok := catalogue[Languages[0]][key]; ok {
		return v
	}
	return key
}

// hoursInEnglish turns the words an opening-hours text (support.hours,
// e.g. 「平日 9:00–17:00」) is written with into English; longer words
// first, so 「土日祝日」 is not read as 「土日」 and 「祝日」.
var hoursInEnglish = strings.NewReplacer(
	"平日", "Weekdays",
	"土日祝日", "Saturdays, Sundays and public holidays", "土日祝", "Saturdays, Sundays and public holidays",
	"土曜日", "Saturdays", "日曜日", "Sundays", "土曜", "Saturdays", "日曜", "Sundays", "祝日", "public holidays",
	"年末年始", "the New Year holidays", "を除く", " excepted", "除く", "except",
	"（", " (", "）", ")", "、", ", ", "・", ", ", "：", ": ", "～", "–", "〜", "–", "　", " ",
)

// Hours is the centre's configured opening hours as lang writes them.
func Hours(lang, hours string) string {
	if lang != "en" {
		return hours
	}
	return hoursInEnglish.Replace(hours)
}

// Static is the tree served under /static/.
func Static() fs.FS {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

func funcs(lang string) template.FuncMap {
	return template.FuncMap{
		"t": func(key string) string { return Text(lang, key) },
		// tf fills a catalogue entry's %[n]s verbs with configured values.
		"tf": func(key string, args ...any) string { return fmt.Sprintf(Text(lang, key), args...) },
		// msg is a page's message: its entry, filled with args when it has verbs.
		"msg": func(key string, args []any) string {
			if len(args) == 0 {
				return Text(lang, key)
			}
			return fmt.Sprintf(Text(lang, key), args...)
		},
		// lines renders a catalogue entry whose line breaks are paragraphs.
		"lines": func(key string) []string { return strings.Split(Text(lang, key), "\n") },
		// cells splits one line of a table entry into its tab-separated cells.
		"cells":   func(line string) []string { return strings.Split(line, "\t") },
		"invalid": invalidAttrs,
	}
}

// fieldErrors names, for each error that is about what was typed, the
// fields (by id) it is about, the first one first.
var fieldErrors = map[string][]string{
	"err.credentials":       {"loginID", "password"},
	"err.login_id_required": {"loginID"},
	"err.password_required": {"password"},
	"err.otp_format":        {"code"},
	"err.otp_wrong":         {"code"},
	"err.pw_current_wrong":  {"current"},
	"err.pw_mismatch":       {"confirm"},
	"err.pw_too_short":      {"new"},
	"err.pw_same_as_id":     {"new"},
	"err.pw_same_as_old":    {"new"},
}

// invalidAttrs marks field as the subject of the page's server-side error
// errKey: aria-invalid, described by the message (id "error", see
// layout.html), and autofocus on the first such field so the cursor is
// where the correction goes, without JavaScript. Errors that are not
// about a field (busy, expired, ...) mark nothing; login.js moves focus
// to their message instead.
func invalidAttrs(errKey, field string) template.HTMLAttr {
	fields := fieldErrors[errKey]
	if !slices.Contains(fields, field) {
		return ""
	}
	attrs := ` aria-invalid="true" aria-describedby="error"`
	if fields[0] == field {
		attrs += " autofocus"
	}
	return template.HTMLAttr(attrs)
}

func checkCatalogue() error {
	ja := catalogue["ja"]
	for _, lang := range Languages {
		m := catalogue[lang]
		for k := range ja {
			if _, ok := m[k]; !ok {
				return fmt.Errorf("templates: catalogue %q lacks %q", lang, k)
			}
		}
		for k := range m {
			if _, ok := ja[k]; !ok {
				return fmt.Errorf("templates: catalogue %q has extra key %q", lang, k)
			}
		}
	}
	return nil
}
