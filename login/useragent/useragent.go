// Package useragent names the browser and operating system of a
// User-Agent header for S8's list of sessions. It knows the browsers the
// loan website's customers use (Safari on iPhone and iPad, Chrome on
// Android, Chrome, Edge and Firefox on a computer, Samsung Internet, the
// LINE app's in-app browser) and answers "" for what it does not
// recognise: the page then says the browser is unknown rather than guess.
// A User-Agent is client input and a hint, never proof of anything.
package useragent

import "strings"

// Device is what S8 shows of a session's browser; empty fields are
// unknown.
type Device struct {
	Browser string // "Safari", "Chrome", "Edge", "Firefox", "Samsung Internet", "LINE"
	OS      string // "iOS", "iPadOS", "Android", "Windows", "macOS", "ChromeOS", "Linux"
}

// browsers are checked in order: the in-app and derived browsers carry the
// tokens of the engine they are built on (Edge, Samsung Internet and LINE
// all say "Chrome/" and "Safari/"), so the most specific token comes first.
var browsers = []struct{ token, name string }{
	{" Line/", "LINE"},
	{"SamsungBrowser/", "Samsung Internet"},
	{"Edg/", "Edge"},
	{"EdgA/", "Edge"},
	{"EdgiOS/", "Edge"},
	{"Firefox/", "Firefox"},
	{"FxiOS/", "Firefox"},
	{"CriOS/", "Chrome"},
	{"Chrome/", "Chrome"},
}

// systems likewise: an iPhone's User-Agent also says "like Mac OS X",
// Android's says "Linux".
var systems = []struct{ token, name string }{
	{"iPhone", "iOS"},
	{"iPod", "iOS"},
	{"iPad", "iPadOS"},
	{"Android", "Android"},
	{"Windows NT", "Windows"},
	{"CrOS", "ChromeOS"},
	{"Macintosh", "macOS"},
	{"Linux", "Linux"},
}

// Parse names the browser and OS of ua.
func Parse(ua string) Device {
	var d Device
	for _, s := range systems {
		if strings.Contains(ua, s.token) {
			d.OS = s.name
			break
		}
	}
	for _, b := range browsers {
		if strings.Contains(ua, b.token) {
			d.Browser = b.name
			return d
		}
	}
	// Safari is what is left of a WebKit browser that says Version/ and
	// Safari/; an app's own web view says neither and stays unknown.
	if strings.Contains(ua, "Safari/") && strings.Contains(ua, "Version/") {
		d.Browser = "Safari"
	}
	return d
}
