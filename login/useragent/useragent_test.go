package useragent

import "testing"

// Real User-Agent strings of the browsers the package names, as those
// browsers send them.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, ua string
		want     Device
	}{
		{"Safari iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
			Device{"Safari", "iOS"}},
		{"Safari iPad", "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
			Device{"Safari", "iPadOS"}},
		{"Safari Mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
			Device{"Safari", "macOS"}},
		{"Chrome Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
			Device{"Chrome", "Android"}},
		{"Chrome iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/125.0.6422.80 Mobile/15E148 Safari/604.1",
			Device{"Chrome", "iOS"}},
		{"Chrome Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
			Device{"Chrome", "Windows"}},
		{"Chrome Mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
			Device{"Chrome", "macOS"}},
		{"Chrome ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
			Device{"Chrome", "ChromeOS"}},
		{"Edge Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.2535.51",
			Device{"Edge", "Windows"}},
		{"Edge Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36 EdgA/125.0.2535.60",
			Device{"Edge", "Android"}},
		{"Firefox Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
			Device{"Firefox", "Windows"}},
		{"Firefox Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
			Device{"Firefox", "Linux"}},
		{"Firefox iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/126.0 Mobile/15E148 Safari/605.1.15",
			Device{"Firefox", "iOS"}},
		{"Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
			Device{"Samsung Internet", "Android"}},
		{"LINE iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.8.0",
			Device{"LINE", "iOS"}},
		{"LINE Android", "Mozilla/5.0 (Linux; Android 13; SO-51C Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.53 Mobile Safari/537.36 Line/14.8.1/IAB",
			Device{"LINE", "Android"}},
		{"iOS app web view", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
			Device{"", "iOS"}},
		{"curl", "curl/8.5.0", Device{}},
		{"empty", "", Device{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.ua); got != tc.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tc.ua, got, tc.want)
			}
		})
	}
}
